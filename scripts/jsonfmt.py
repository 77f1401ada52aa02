"""Readable JSON for the reference files the scripts write (shared by export_zoo.py and train_fashion.py)."""
import json


def dumps(obj, indent=""):
    """JSON with lists of scalars (shapes, logits) on one line so the file stays readable."""
    inner = indent + " "
    if isinstance(obj, dict) and obj:
        items = [f"{inner}{json.dumps(str(k))}: {dumps(v, inner)}" for k, v in obj.items()]
        text = "{\n" + ",\n".join(items) + "\n" + indent + "}"
    elif isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        text = "[\n" + ",\n".join(inner + dumps(v, inner) for v in obj) + "\n" + indent + "]"
    else:
        text = json.dumps(obj, separators=(", ", ": "))
    return text if indent else text + "\n"
