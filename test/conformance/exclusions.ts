/**
 * The one list of ONNX conformance tests q8 does not pass, each with its reason. Keep it short:
 * at most 2% of the in-scope tests. The suite fails if a listed test starts passing (so the list
 * never goes stale) or if an unlisted in-scope test fails.
 */
const BF16_DATA = 'the test data of this ONNX release (1.12, Debian) stores bfloat16 tensors with data_type UINT16, so inputs/outputs do not match the model\'s declared bfloat16 type; q8 checks input dtypes strictly';
const NO_SEQUENCES = 'the case feeds a sequence/optional value (SequenceProto/OptionalProto test data); q8 values are tensors only';

export const EXCLUSIONS: Readonly<Record<string, string>> = {
  test_cast_BFLOAT16_to_FLOAT: BF16_DATA,
  test_cast_FLOAT_to_BFLOAT16: BF16_DATA,
  test_castlike_BFLOAT16_to_FLOAT: BF16_DATA,
  test_castlike_BFLOAT16_to_FLOAT_expanded: BF16_DATA,
  test_castlike_FLOAT_to_BFLOAT16: BF16_DATA,
  test_castlike_FLOAT_to_BFLOAT16_expanded: BF16_DATA,
  test_identity_opt: NO_SEQUENCES,
  test_identity_sequence: NO_SEQUENCES,
};
