/**
 * TensorFlow frozen GraphDef loader (.pb binary or .pbtxt text). The graph is pruned to what the
 * requested outputs need (from the requested inputs), then each TF op is lowered to ONNX ops
 * (opset 13). Tensors keep TensorFlow's layout: NHWC ops that ONNX defines on NCHW (Conv, pools,
 * resize) are wrapped in Transposes, so inputs and outputs mean exactly what they mean in TF.
 * TF's int32 (shape arithmetic) is carried as int64, ONNX's shape type.
 *
 *   const m = loadTensorFlow(readFileSync('frozen.pb'), { inputs: ['input'], outputs: ['output'] });
 */
import { Q8Error } from '../../core/errors.js';
import { ProtobufError } from '../../core/protobuf.js';
import type { Model } from '../../graph/ir.js';
import { lowerTensorFlowNodes, type TensorFlowOptions } from '../tf-ops/lower.js';
import { decodeGraphDef, parseGraphDefText, type TfNode } from './graphdef.js';

export { TENSORFLOW_OPS, lowerTensorFlowNodes, type TensorFlowOptions } from '../tf-ops/lower.js';
export { TF_DTYPES, type TfNode, type TfAttr } from '../tf-ops/node.js';

/** Load a frozen GraphDef: bytes (binary or text) or text. */
export function loadTensorFlow(src: Uint8Array | string, opts: TensorFlowOptions = {}): Model {
  const file = opts.file;
  let nodes: TfNode[];
  try {
    if (typeof src === 'string') nodes = parseGraphDefText(src, file);
    else if (looksLikeText(src)) nodes = parseGraphDefText(new TextDecoder().decode(src), file);
    else nodes = decodeGraphDef(src);
  } catch (e) {
    if (e instanceof Q8Error) throw e.withContext({ file });
    const why = e instanceof ProtobufError || e instanceof Error ? e.message : String(e);
    throw new Q8Error(`not a readable TensorFlow GraphDef: ${why}`, { file });
  }
  return lowerTensorFlowNodes(nodes, opts);
}


/** Text GraphDefs start with "node {" (possibly after comments/whitespace); binary ones with tag 0x0a. */
function looksLikeText(b: Uint8Array): boolean {
  const head = new TextDecoder().decode(b.subarray(0, 256));
  return /^\s*(#[^\n]*\n\s*)*(node|versions|library)\s*[{:<]/.test(head);
}
