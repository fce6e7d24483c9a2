"""Reading a GGUF file's metadata and tensors: jaxrl3m's reader (`jaxrl3m.llm.gguf.read_gguf`)
against `gguf.GGUFReader`, side by side in one run, on the installed models; checks that both
give the same fields and the same dequantised tensors.

    python bench/gguf_read.py                      # smollm2 and gemma3-270m (make model)
    python bench/gguf_read.py --models smollm2 --repeats 3
"""

from __future__ import annotations

import time

import benchlib
import numpy as np


def measure(name: str, repeats: int) -> dict:
    import gguf

    from jaxrl3m.llm.gguf import read_gguf
    from jaxrl3m.llm.loading import resolve
    path = resolve(name)
    ours = theirs = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fields, tensors = read_gguf(path)
        ours = min(ours, time.perf_counter() - t)
        t = time.perf_counter()
        reader = gguf.GGUFReader(str(path))
        theirs = min(theirs, time.perf_counter() - t)
    for key, f in reader.fields.items():
        if key.startswith("GGUF."):  # the header's own counts, not metadata
            continue
        a, b = fields[key], f.contents()
        same = np.array_equal(a, np.asarray(b)) if isinstance(a, np.ndarray) else a == b
        assert same, f"field {key} differs"
    for t in reader.tensors:
        mine = tensors[t.name]
        assert mine.tensor_type == int(t.tensor_type), t.name
        a = gguf.quants.dequantize(mine.data, gguf.GGMLQuantizationType(mine.tensor_type))
        assert np.array_equal(a.reshape(-1), gguf.quants.dequantize(
            t.data, t.tensor_type).reshape(-1)), f"tensor {t.name} differs"
    return {"model": name, "file": path.name, "fields": len(fields), "tensors": len(tensors),
            "jaxrl3m_s": ours, "gguf_reader_s": theirs, "speedup": theirs / ours}


def main() -> int:
    p = benchlib.parser(__doc__, "gguf_read.json")
    p.add_argument("--models", nargs="+", default=["smollm2", "gemma3-270m"])
    p.add_argument("--repeats", type=int, default=1, help="best of this many reads of each")
    args = p.parse_args()
    rows = []
    for name in args.models:
        r = measure(name, args.repeats)
        rows.append(r)
        print(f"{name:12s} {r['fields']} fields, {r['tensors']} tensors (same in both): "
              f"jaxrl3m {r['jaxrl3m_s']:.2f} s, gguf.GGUFReader {r['gguf_reader_s']:.2f} s "
              f"({r['speedup']:.1f}x)", flush=True)
    table = "\n".join(["| model | jaxrl3m s | gguf.GGUFReader s | speed-up |", "|---|---|---|---|",
                       *(f"| {r['model']} | {r['jaxrl3m_s']:.2f} | {r['gguf_reader_s']:.2f} | "
                         f"{r['speedup']:.1f}x |" for r in rows)])
    benchlib.save(args.out, {"results": rows}, markdown=table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
