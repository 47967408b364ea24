# Checks siamese's LMDBs against C LMDB 0.9.x through py-lmdb (which bundles it), both ways.
# Not needed by the test suite; run in a venv with `pip install lmdb` (docs/lmdb.md has the run).
#   python3 scripts/lmdb_compat.py write DIR   -> DIR/data.mdb: 50 records of the fixture
#   python3 scripts/lmdb_compat.py read DB...  -> per database: records, key range, SHA-256
#                                                 of all keys and values, first Datum's fields
import hashlib, os, sys
import lmdb


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def datum(i, big):
    """caffe.Datum bytes, as crates/data/src/lmdb.rs's test `datum(i, big)` builds it."""
    c, side = (3, 40) if big else (2, 28)
    data = bytes((b * 7 + i) % 256 for b in range(c * side * side))
    return (b"\x08" + varint(c) + b"\x10" + varint(side) + b"\x18" + varint(side)
            + b"\x22" + varint(len(data)) + data + b"\x28" + varint(i % 2))


def fields(value):
    """(field number, integer or byte length) of a Datum's fields, for a readable check."""
    out, at = [], 0
    while at < len(value):
        tag, at = decode_varint(value, at)
        if tag & 7 == 0:
            v, at = decode_varint(value, at)
        else:
            n, at = decode_varint(value, at)
            v, at = f"{n} bytes", at + n
        out.append((tag >> 3, v))
    return out


def decode_varint(b, at):
    n = shift = 0
    while True:
        n |= (b[at] & 0x7F) << shift
        shift += 7
        at += 1
        if not b[at - 1] & 0x80:
            return n, at


def main():
    print("py-lmdb", lmdb.__version__, "C LMDB", ".".join(map(str, lmdb.version())))
    if sys.argv[1] == "write":
        os.makedirs(sys.argv[2], exist_ok=True)
        env = lmdb.open(sys.argv[2], map_size=1 << 24, lock=False)
        with env.begin(write=True) as txn:
            for i in range(50):
                txn.put(b"%08d" % i, datum(i, i % 7 == 3))
        env.close()
        return
    for path in sys.argv[2:]:
        env = lmdb.open(path, readonly=True, lock=False)
        digest, count, first, last = hashlib.sha256(), 0, None, None
        with env.begin() as txn:
            for key, value in txn.cursor():
                digest.update(key)
                digest.update(value)
                if first is None:
                    print(path, "first Datum fields", fields(value))
                    first = key
                last, count = key, count + 1
        print(path, count, "records", first, "..", last, "sha256", digest.hexdigest())
        env.close()


main()
