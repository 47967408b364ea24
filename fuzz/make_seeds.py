#!/usr/bin/env python3
"""Writes seed inputs for the fuzz targets into fuzz/corpus/<target>/ (run from anywhere).

Hand-encoded protobuf (no protobuf package needed): small but well-formed Datums and
.caffemodel/.solverstate files for the deploy net's smallest layers, IDX files, and the
project's own prototxt and experiment files."""
import gzip, os, struct, shutil, glob, zlib

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)

def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload

def blob(dims, legacy=False, double=False):
    count = 1
    for d in dims:
        count *= d
    out = b""
    if legacy:
        for i, d in enumerate([1] * (4 - len(dims)) + dims):
            out += field(i + 1, 0, d)
    else:
        out += field(7, 2, field(1, 2, b"".join(varint(d) for d in dims)))
    if double:
        out += field(8, 2, struct.pack(f"<{count}d", *[0.25] * count))
    else:
        out += field(5, 2, struct.pack(f"<{count}f", *[0.5] * count))
    return out

def layer(name, blobs, v1=False):
    if v1:  # V1LayerParameter: name 4, type 5 (INNER_PRODUCT = 14), blobs 6
        return field(2, 2, field(4, 2, name) + field(5, 0, 14) + b"".join(field(6, 2, b) for b in blobs))
    return field(100, 2, field(1, 2, name) + b"".join(field(7, 2, b) for b in blobs))

def write(target, name, data):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def main():
    # caffemodel: the deploy net's `feat` (10 -> 2) and `ip2` (500 -> 10) layers.
    feat = [blob([2, 10]), blob([2])]
    write("caffemodel", "feat", layer(b"feat", feat))
    write("caffemodel", "feat_legacy_double", layer(b"feat", [blob([2, 10], True, True), blob([2], True)]))
    write("caffemodel", "feat_v1", field(1, 2, b"mnist_siamese") + layer(b"feat", feat, v1=True))
    write("caffemodel", "feat_wrong_shape", layer(b"feat", [blob([10, 2]), blob([2])]))
    # solverstate: iter 1, learned_net, history blobs, current_step.
    state = field(1, 0, 100) + field(2, 2, b"snaps/x_iter_100.caffemodel")
    write("solverstate", "two", state + field(3, 2, blob([2, 10])) + field(3, 2, blob([2])) + field(4, 0, 1))
    write("solverstate", "empty_history", state)
    # datum: one-byte length, then a Datum; two records.
    def datum(c, h, w, label):
        return (field(1, 0, c) + field(2, 0, h) + field(3, 0, w)
                + field(4, 2, bytes(range(c * h * w))) + field(5, 0, label))
    d1, d2 = datum(2, 2, 3, 1), datum(2, 2, 3, 0)
    write("datum", "two_records", bytes([len(d1)]) + d1 + bytes([len(d2)]) + d2)
    write("datum", "float_only", bytes([12]) + field(1, 0, 1) + field(2, 0, 1) + field(3, 0, 1) + field(6, 2, struct.pack("<f", 1.0)))
    # idx: 3 images of 4 x 5 and 3 labels, raw and gzip.
    images = struct.pack(">IIII", 2051, 3, 4, 5) + bytes(range(60))
    labels = struct.pack(">II", 2049, 3) + bytes([1, 7, 9])
    for name, data in [("images", images), ("labels", labels)]:
        write("idx", name, data)
        write("idx", name + ".gz", gzip.compress(data, mtime=0))
    # prototxt: the project's and Caffe's own files.
    refs = glob.glob(os.path.join(REPO, "experiments/siamese/*.prototxt"))
    for shared in [os.path.join(REPO, "../shared"), "/work/shared"]:
        refs += glob.glob(os.path.join(shared, "caffe-reference/*/*.prototxt"))
    for path in refs:
        target = "prototxt_solver" if "solver" in os.path.basename(path) else "prototxt_net"
        with open(path, "rb") as f:
            write(target, "_".join(path.split("/")[-2:]), f.read())
    for path in glob.glob(os.path.join(REPO, "experiments/*.toml")):
        with open(path, "rb") as f:
            write("experiment_toml", os.path.basename(path), f.read())
    # onnx_export: the deploy nets (an Input layer, no data files).
    for path in refs:
        with open(path, "rb") as f:
            text = f.read()
        if b'"Input"' in text or b"input_dim" in text:
            write("onnx_export", "_".join(path.split("/")[-2:]), text)
    # leveldb: file pick byte, mode 1 (patch) with no edits = the intact database; a few cuts.
    for pick in range(6):
        write("leveldb", f"intact_{pick}", bytes([pick, 1]))
        write("leveldb", f"cut_{pick}", bytes([pick, 1]) + struct.pack("<H", 100))
    # lmdb: mode 1 with no edits = the intact database; one cut inside the first pages.
    write("lmdb", "intact", bytes([1]))
    write("lmdb", "cut", bytes([1]) + struct.pack("<H", 300))
    # The run record's CSVs, as siamese writes them.
    write("training_log", "log", b"iter,lr,train_loss,test_loss,elapsed_s\n0,0.01,0.5,,0.1\n100,0.01,0.2,0.25,1.5\n")
    write("features_csv", "features", b"index,label,f0,f1\n0,7,0.5,-1.25\n1,2,1e-3,3\n")
    write("file_features_csv", "features", b"file,f0,f1\ndigits/a.png,0.5,-1.25\n\"b,c.jpg\",1,2\n")
    # image: a 2x2 8-bit grey PNG (hand-made chunks) and a list file naming it.
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x10\x80\x00\xff\x40")) + chunk(b"IEND", b""))
    write("image", "grey_2x2.png", png)

main()
