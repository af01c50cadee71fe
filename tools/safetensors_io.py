"""Read, check and write safetensors checkpoints with the Python standard library.

memrl checkpoints (memrl_nn.h, "checkpoints (safetensors)") are safetensors
files, so this reader needs nothing beyond json and struct:

    python3 tools/safetensors_io.py dump  FILE           list tensors and metadata
    python3 tools/safetensors_io.py check FILE EXPECT    compare with an expectation
                                                         file (see check_expect)

As a module (tools/make_ref.py uses it to write tests/ref/torch_written.*):

    header, metadata, tensors = read(path)      # tensors: name -> Tensor
    values(tensors["pi.0.weight"])              # F32/F64/F16/I64/... -> list
    write(path, [(name, dtype, shape, raw_bytes), ...], metadata)
    write_torch(path, {name: torch_tensor}, metadata)   # needs torch; F32/F64/F16/BF16/ints

The reader applies the rules of the reference implementation
(huggingface/safetensors): header length at most 100 000 000 bytes and inside
the file, UTF-8 JSON starting with '{' (only whitespace may pad its end), no
duplicate keys, known dtypes, non-negative integer shapes and offsets, each
tensor's byte size equal to its element count times its dtype size, offsets
tiling the data from 0 to the end of the file with no gap and no overlap.
Any violation raises ValueError.
"""

import json
import struct
import sys
import zlib

MAX_HEADER = 100000000

# dtype -> (size in bits, struct format letter or None)
DTYPES = {
    "BOOL": (8, "?"), "U8": (8, "B"), "I8": (8, "b"), "I16": (16, "h"), "U16": (16, "H"),
    "F16": (16, "e"), "BF16": (16, None), "I32": (32, "i"), "U32": (32, "I"),
    "F32": (32, "f"), "F64": (64, "d"), "I64": (64, "q"), "U64": (64, "Q"),
    "C64": (64, None), "F8_E5M2": (8, None), "F8_E4M3": (8, None), "F8_E8M0": (8, None),
    "F4": (4, None), "F6_E2M3": (6, None), "F6_E3M2": (6, None),
}
# The reference writer orders tensors by descending dtype alignment, then name.
_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
          "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]


class Tensor:
    def __init__(self, name, dtype, shape, data):
        self.name, self.dtype, self.shape, self.data = name, dtype, shape, data

    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def _reject_constant(name):
    raise ValueError("non-standard JSON constant %s" % name)


def _uint(v, what):
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError("%s must be a non-negative integer, got %r" % (what, v))
    return v


def parse(buf):
    """Validates a whole file held in bytes; returns (header, metadata, tensors)."""
    if len(buf) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER:
        raise ValueError("header length %d over the limit" % n)
    if 8 + n > len(buf):
        raise ValueError("header length %d past the end of the file" % n)
    text = buf[8:8 + n].decode("utf-8")  # raises on invalid UTF-8
    if not text.startswith("{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    metadata = header.get("__metadata__")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("__metadata__ must map strings to strings")
    data = buf[8 + n:]
    infos = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise ValueError("%s: entry is not an object" % name)
        for field in ("dtype", "shape", "data_offsets"):
            if field not in info:
                raise ValueError("%s: no %s" % (name, field))
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise ValueError("%s: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
            raise ValueError("%s: bad shape or data_offsets" % name)
        shape = [_uint(d, name + " shape") for d in shape]
        begin, end = (_uint(o, name + " offset") for o in offsets)
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * DTYPES[dtype][0]
        if bits % 8 or end < begin or end - begin != bits // 8:
            raise ValueError("%s: offsets do not match dtype and shape" % name)
        infos.append((begin, end, name, dtype, shape))
    infos.sort()
    pos = 0
    tensors = {}
    for begin, end, name, dtype, shape in infos:
        if begin != pos:
            raise ValueError("%s: offsets leave a gap or overlap" % name)
        pos = end
        tensors[name] = Tensor(name, dtype, shape, data[begin:end])
    if pos != len(data):
        raise ValueError("data is %d bytes, the tensors cover %d" % (len(data), pos))
    return header, metadata, tensors


def read(path):
    with open(path, "rb") as f:
        return parse(f.read())


def values(t):
    """The tensor's elements as a flat Python list (little-endian)."""
    fmt = DTYPES[t.dtype][1]
    if fmt is None:
        raise ValueError("%s: dtype %s has no standard-library decoding" % (t.name, t.dtype))
    return list(struct.unpack("<%d%s" % (t.numel(), fmt), t.data))


def serialize(tensors, metadata=None):
    """tensors: iterable of (name, dtype, shape, raw little-endian bytes)."""
    items = sorted(tensors, key=lambda t: (-_ORDER.index(t[1]), t[0]))
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    off = 0
    for name, dtype, shape, raw in items:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # data 8-byte aligned, as the reference pads
    out = struct.pack("<Q", len(text)) + text + b"".join(raw for _, _, _, raw in items)
    parse(out)  # never write what we would not read
    return out


def write(path, tensors, metadata=None):
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata))


def write_torch(path, state, metadata=None):
    """Writes {name: torch.Tensor} (float32/64/16, int64/32/8, uint8, bool)."""
    import torch
    kinds = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL"}
    out = []
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        dtype = kinds[t.dtype]
        bits = {"F16": (torch.int16, "h"), "BF16": (torch.int16, "h"),
                "F32": (torch.int32, "i"), "F64": (torch.int64, "q")}.get(dtype)
        if bits:  # floats by their bit patterns: NaN payloads survive, BF16 has no letter
            flat = t.view(bits[0]).reshape(-1).tolist()
            raw = struct.pack("<%d%s" % (len(flat), bits[1]), *flat)
        else:
            flat = t.reshape(-1).tolist()
            raw = struct.pack("<%d%s" % (len(flat), DTYPES[dtype][1]), *flat)
        out.append((name, dtype, list(t.shape), raw))
    write(path, out, metadata)


def check_expect(path, expect_path):
    """Compares a checkpoint with an expectation file of lines
         tensor NAME DTYPE D0,D1,.. CRC32 SUM    (CRC32 of the raw bytes, hex;
                                                 SUM of the values, %.17g)
         meta KEY VALUE...                       (the rest of the line)
         count N                                 (number of tensors)
    Returns a list of problems (empty: all good)."""
    problems = []
    header, metadata, tensors = read(path)
    n = struct.unpack("<Q", open(path, "rb").read(8))[0]
    if n % 8:
        problems.append("header length %d is not a multiple of 8" % n)
    with open(expect_path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            kind, rest = line.split(" ", 1)
            if kind == "count":
                if int(rest) != len(tensors):
                    problems.append("%d tensors, expected %s" % (len(tensors), rest))
            elif kind == "meta":
                key, value = (rest.split(" ", 1) + [""])[:2]
                if metadata.get(key) != value:
                    problems.append("metadata %s = %r, expected %r" % (key, metadata.get(key), value))
            elif kind == "tensor":
                name, dtype, shape, crc, total = rest.split(" ")
                t = tensors.get(name)
                if t is None:
                    problems.append("missing tensor %s" % name)
                    continue
                want_shape = [int(d) for d in shape.split(",")] if shape != "-" else []
                if t.dtype != dtype or t.shape != want_shape:
                    problems.append("%s: %s %s, expected %s %s" % (name, t.dtype, t.shape, dtype,
                                                                   want_shape))
                if "%08x" % (zlib.crc32(t.data) & 0xffffffff) != crc:
                    problems.append("%s: CRC32 differs" % name)
                s = 0.0
                for v in values(t):
                    s += v
                if abs(s - float(total)) > 1e-9 * max(1.0, abs(s)):
                    problems.append("%s: sum %.17g, expected %s" % (name, s, total))
            else:
                problems.append("unknown expectation line %r" % line)
    return problems


def main(argv):
    if len(argv) == 3 and argv[1] == "dump":
        header, metadata, tensors = read(argv[2])
        for k, v in sorted(metadata.items()):
            print("meta %s = %r" % (k, v))
        for name in sorted(tensors):
            t = tensors[name]
            print("%s %s %s crc32=%08x" % (name, t.dtype, t.shape, zlib.crc32(t.data) & 0xffffffff))
        return 0
    if len(argv) == 4 and argv[1] == "check":
        try:
            problems = check_expect(argv[2], argv[3])
        except (ValueError, OSError, UnicodeDecodeError) as e:
            problems = ["cannot read: %s" % e]
        for p in problems:
            print("FAIL %s: %s" % (argv[2], p))
        if not problems:
            print("ok %s" % argv[2])
        return 1 if problems else 0
    print(__doc__.strip().split("\n\n")[1])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
