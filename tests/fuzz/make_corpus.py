#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/
from what the tests already hold: the golden frames of tests/unit/test_codec.cpp,
configs/*.json|toml, tests/interop/items.json, tests/unit/expr_cases.json.
Run it again after changing any of those; the files are committed (small).
Usage: tests/fuzz/make_corpus.py   (from anywhere)"""

import hashlib
import json
import re
import shutil
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent.parent
CORPUS = FUZZ / "corpus"
FS, RS = b"\x1f", b"\x1e"  # frame and request separators of the request targets (request_harness.hpp)


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def request(*frames):
    return FS.join(f if isinstance(f, bytes) else f.encode() for f in frames)


_rid = iter(range(1, 10**6))


def req(kind, target, payload="", flags=b"", bulk=None):
    """One request of the request targets, with a new id."""
    frames = ["a", "%08x" % next(_rid), kind, target, flags, payload]
    if bulk is not None:
        frames.append(bulk)
    return request(*frames)


def daemon_request():
    t = "daemon_request"

    keys = ["flag", "onoff", "temp", "count", "angle", "mode", "bits", "name", "offsets", "image", "setpoint",
            "note", "readonly", "hidden", "any"]
    for k in keys:
        put(t, req("GET", "fuzz." + k))
    put(t, req("GET", "fuzz.temp", '{"refresh": true}'))
    sets = {
        "flag": ['{"value": true}', '{"value": "1"}', '{"value": "yes"}'],
        "onoff": ['{"value": "On"}', '{"value": 0}'],
        "temp": ['{"value": 21.5}', '{"value": "17"}', '{"value": 1e308}', '{"value": NaN}', '{"value": 151}'],
        "count": ['{"value": 18446744073709551615}', '{"value": -1}', '{"value": 12345678901234567890123}'],
        "angle": ['{"value": 0.5}', '{"value": "12:30:00"}'],
        "mode": ['{"value": "Auto"}', '{"value": 7}', '{"value": "auto"}'],
        "bits": ['{"value": 35}', '{"value": "A, F"}', '{"value": ["A", "B"]}', '{"value": "clear"}'],
        "name": ['{"value": "x"}', '{"value": null}', '{"value": {"a": [1]}}'],
        "offsets": ['{"value": [1, -2.5, 3]}', '{"value": [11]}', '{"value": "1 2"}'],
        "setpoint": ['{"value": 42}', '{"value": 101}'],
        "note": ['{"value": "saved"}'],
        "readonly": ['{"value": 1}'],
        "any": ['{"value": [1, "a", null, {"b": NaN}]}', '{"value": 1, "time": 5}', '{}', ''],
    }
    for k, payloads in sets.items():
        for p in payloads:
            put(t, req("SET", "fuzz." + k, p))
    put(t, req("SET", "fuzz.image", '{"shape": [2, 2], "dtype": "uint16"}', bulk=bytes(8)))
    put(t, req("SET", "fuzz.image", '{"shape": [3], "dtype": "float64"}', bulk=bytes(8)))
    put(t, req("SET", "fuzz.image", '{"shape": [2], "dtype": "int8"}', bulk=b""))
    put(t, req("SET", "fuzz.temp", '{"value": 1}', bulk=b"xx"))
    put(t, req("GET", "fuzz.temp", "", flags=b"\x01"))
    put(t, req("SET", "fuzz.temp", '{"value": 2}', flags=b"\x02"))
    put(t, req("SET", "fuzz.temp", '{"value": 3}', flags=b"\x03"))
    put(t, req("GET", "fuzz.temp", "", flags=b"\x00\x00\x00\x00\x00\x00\x00\x00\x01"))
    for target in ["_hash", "._hash", "fuzz._hash", "fuzz._catalog", "_catalog", "other._hash", "other.temp",
                   "fuzz.nope", "fuzz", "fuzz.", ".temp", "FUZZ.TEMP", "fuzz.uptime", "fuzz.fuzz1_uptime"]:
        put(t, req("GET", target))
        put(t, req("SET", target, '{"value": 1}'))
    # Malformed frame sets (test_codec.cpp's cases).
    put(t, request("b", "00000001", "GET", "fuzz.temp", "", ""))
    put(t, request("a", "00000001", "PUT", "fuzz.temp", "", ""))
    put(t, request("a", "00000001", "ACK", "", "", ""))
    put(t, request("a", "00000001", "REP", "fuzz.temp", "", '{"value": 1}'))
    put(t, request("a", "00000001", "GET"))
    put(t, request("a"))
    put(t, request(""))
    put(t, request("a", "00000001", "GET", "fuzz.temp", "", "{not json"))
    put(t, request("a", "00000001", "GET", "fuzz.temp", "", "[1]"))
    put(t, request("a", "", "GET", "fuzz.temp", "", ""))
    put(t, request(*(["a", "00000001", "SET", "fuzz.any", "", '{"value": 1}'] + ["x"] * 12)))
    # Sequences: SET then GET in one input.
    put(t, RS.join([req("SET", "fuzz.mode", '{"value": "On"}'), req("GET", "fuzz.mode")]))
    put(t, RS.join([req("SET", "fuzz.setpoint", '{"value": 5}'), req("GET", "fuzz.setpoint"),
                    req("GET", "fuzz._catalog")]))
    # The golden request of test_codec.cpp.
    put(t, request("a", "00000001", "GET", "demo.temp", "", '{"refresh": true}'))


def collection_request():
    t = "collection_request"
    puts = ['{"value": {"id": 1, "grp": "a", "qty": 3, "price": 2.5}}', '{"value": {"id": 2, "grp": "b", "qty": 0}}',
            '{"value": {"id": 3, "grp": "a", "qty": -1, "note": "x"}, "ref": "r1"}',
            '{"value": {"id": 1, "grp": "a"}}', '{"value": {"id": "x", "grp": 1, "qty": 1.5}}',
            '{"value": {"id": 9, "grp": "c", "qty": 1, "extra": 1}}', '{"value": [1, "a", 2]}', '{"value": null}',
            '{"id": 4, "grp": "d", "qty": 7}']
    for p in puts:
        put(t, req("SET", "fuzz.w_put", p))
    put(t, req("SET", "fuzz.w_del", '{"value": {"id": 1}}'))
    put(t, req("SET", "fuzz.w_del", '{"value": {}}'))
    put(t, req("GET", "fuzz.w_put", '{"ref": "r1"}'))
    gets = ['', '{"snapshot": true}', '{"snapshot": true, "filter": "grp == \'a\' and qty > 1", "maxcount": 1}',
            '{"snapshot": true, "maxcount": 1, "cursor": "1"}', '{"snapshot": true, "filter": "note > 1"}',
            '{"snapshot": true, "filter": "price"}', '{"snapshot": true, "maxcount": -1}',
            '{"since": 0}', '{"since": 1, "epoch": "x"}', '{"since": "20260101 00:00:00.000000000000"}',
            '{"since": -9223372036854775808}', '{"rowid": 1}', '{"rowid": "1"}', '{"refresh": true}',
            '{"stats": true}', '{"snapshot": true, "since": 2, "rowid": 3}']
    for key in ("keyed", "table", "stream"):
        for g in gets:
            put(t, req("GET", "fuzz." + key, g))
        put(t, req("SET", "fuzz." + key, '{"value": 1}'))
    put(t, RS.join([req("SET", "fuzz.w_put", puts[0]), req("SET", "fuzz.w_put", puts[1]),
                    req("GET", "fuzz.keyed", '{"since": 0}'), req("SET", "fuzz.w_del", '{"value": {"id": 1}}'),
                    req("GET", "fuzz.table", '{"snapshot": true, "maxcount": 1}'),
                    req("GET", "fuzz.stream", '{"since": 0}')]))

    put(t, req("GET", "fuzz.temp"))


def json_payload():
    t = "json_payload"
    texts = ['{"value": 42.5, "time": 1712345678.25}', '{"time": 5, "value": [1, 2, {"a": null}]}',
             ' {"value": "x", "extra": {"deep": [1]}, "time": "not a number"} ', '{"value": 1, "value": 2}',
             '{"value": NaN, "time": 1.0}', '{}', '', '{"value": -Infinity}', '{"value": 1e400}',
             '{"value": 340282366920938463463374607431768211455}', '{"value": -0.0}', '{"value": "\\u00e9\\ud83d\\ude00"}',
             '{"value": null, "error": {"type": "KeyError", "text": "no"}}', '{"value": [1, 2.5, "3"]}',
             '{"value": "On"}', '{"value": "A, F"}', '{"value": "12:30:15.5"}', '{"value": true}',
             '{"shape": [2, 3], "dtype": "uint16", "time": 1.5}', '17', '"1.5"', '[[[[[[1]]]]]]', 'NaN',
             '-12:30:00', 'clear', 'A,B', 'off', '1 2 3', '0x1f']
    for i, text in enumerate(texts):
        put(t, bytes([i % 16]) + text.encode())


def catalog():
    t = "catalog"
    for f in list((ROOT / "configs").glob("*.json")) + [ROOT / "tests/interop/items.json"]:
        put(t, f.read_bytes())
    src = (FUZZ / "fuzz_daemon_request.cpp").read_text()
    put(t, re.search(r'kCatalog = R"\((.*?)\)"', src, re.S).group(1))
    put(t, '{"a": {"type": "mask", "enumerators": {"0": "x", "63": "y", "None": "z"}, "initial": 3}}')
    put(t, '{"B": {"type": "boolean", "persist": "yes"}, "_x": {}}')


def expr():
    t = "expr"
    cases = json.loads((ROOT / "tests/unit/expr_cases.json").read_text())
    for case in cases["cases"]:
        data = case["expr"].encode()
        if "row" in case:
            data += b"\0" + json.dumps(case["row"]).encode()
        put(t, data)


def collections_config():
    t = "collections_config"
    put(t, b"\0" + (ROOT / "configs/orders.toml").read_bytes())
    put(t, b"\1" + (ROOT / "configs/orders.json").read_bytes())
    put(t, b"\0" + b'port = 1\n[services.x\nprotocol = "stream"\n')
    put(t, b"\0" + b'[tables.t]\ncolumns = { id = "INTEGER PRIMARY KEY", v = "REAL" }\n'
        b'[services.s]\ntype = "subpub"\ntable = "t"\ntopic = "id"\nwhere = "v > 1"\n')


def daemon_config():
    t = "daemon_config"
    cli = (ROOT / "tests/cli/test_markd_mkio.sh").read_text()
    m = re.search(r"cat >\"\$work/daemon.toml\" <<'EOF'\n(.*?)\nEOF", cli, re.S)
    if m:
        put(t, b"\0" + m.group(1).encode())
    put(t, b"\0" + (ROOT / "configs/orders.toml").read_bytes())
    for f in (ROOT / "configs").glob("*.json"):
        put(t, b"\1" + f.read_bytes())
    put(t, b'\1{"items": {"mode": {"type": "enumerated", "enumerators": {"0": "Off"}}}, '
        b'"tables": {"n": {"columns": {"id": "INTEGER PRIMARY KEY"}}}}')


def discovery():
    t = "discovery"
    for d in ["Aloha mKTL", " Aloha mKTL\n", "E komo mai:10111", "E komo mai: 65535 ", "E komo mai:0",
              "E komo mai:99999", "E komo mai:"]:
        put(t, b"\0" + d.encode())
    block = {"store": "heater", "alias": "one", "uuid": "u1", "time": 100.0, "hash": 1,
             "provenance": [{"stratum": 0, "hostname": "daemonhost", "rep": 5000, "pub": 5001}],
             "items": {"temp": {"type": "numeric", "units": "degC"}}}
    other = dict(block, uuid="u2", provenance=[{"stratum": 0, "hostname": "elsewhere", "rep": 6000}])
    loop = dict(block, provenance=block["provenance"] + [{"stratum": 1, "hostname": "fuzzregistry", "rep": 9000}])
    for mode in (1, 4, 10, 13):  # % 3 == 1: blocks; bit 2 override, bit 3 the old daemon answers
        put(t, bytes([mode]) + b"\0".join(json.dumps(b).encode() for b in (block, other, loop)))
    put(t, b"\2" + b'{"broadcast": "127.255.255.255", "daemon_port": 10111, "registry_port": 10103}\0'
        b"host1 host2 # comment\n# all comment\nhost3\n")
    put(t, b"\2" + b'{"daemon_port": 0}')


if __name__ == "__main__":
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    for make in (daemon_request, collection_request, json_payload, catalog, expr, collections_config, daemon_config, discovery):
        make()
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"{sum(1 for f in CORPUS.rglob('*') if f.is_file())} files, {total} bytes in {CORPUS}")
