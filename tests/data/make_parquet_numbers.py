"""Writes tests/data/numbers-*.parquet: the page layouts nnc's own Parquet
decoder (src/runtime/data/pages.rs) must read as the `parquet` crate's
readers do. Each file has 1500 rows in 3 row groups of small pages (many
page boundaries), and:

- `plain`: doubles with nulls, never dictionary-encoded;
- `dict`: doubles with nulls whose dictionary outgrows its limit, so the
  column switches from dictionary-encoded pages to plain ones mid-chunk;
- `few`: doubles from 7 values (dictionary-encoded throughout);
- `single`: 32-bit floats; `i32`, `i64`: integers with nulls; `u32`, `u64`:
  unsigned integers with values above the signed range;
- `req`: a required (non-nullable) double column;
- `delta`: integers in DELTA_BINARY_PACKED, which nnc leaves to the crate;
- `label`: classes 0, 1, 2 as int64.

Variants: data page v1 with snappy, v2 with zstd, v1 uncompressed.
Run from the repository root:

    python3 tests/data/make_parquet_numbers.py
"""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

rows = 1500
rng = np.random.default_rng(7)


def nulls(values, every):
    mask = np.zeros(rows, dtype=bool)
    mask[rng.integers(0, rows, rows // every)] = True
    return pa.array(values, mask=mask)


table = pa.table(
    {
        "plain": nulls(rng.normal(size=rows), 9),
        "dict": nulls(rng.normal(size=rows).round(3), 11),
        "few": pa.array(rng.choice([-1.5, 0.0, 0.25, 2.0, 3.5, 1e6, -7.0], size=rows)),
        "single": pa.array(rng.normal(size=rows).astype(np.float32)),
        "i32": nulls(rng.integers(-(2**31), 2**31 - 1, size=rows, dtype=np.int32), 13),
        "i64": nulls(rng.integers(-(2**62), 2**62, size=rows, dtype=np.int64), 17),
        "u32": pa.array(rng.integers(2**31, 2**32 - 1, size=rows, dtype=np.uint32)),
        "u64": pa.array(rng.integers(2**63, 2**64 - 1, size=rows, dtype=np.uint64)),
        "req": pa.array(rng.normal(size=rows)),
        "delta": pa.array(rng.integers(0, 1000, size=rows, dtype=np.int64)),
        "label": pa.array(rng.integers(0, 3, size=rows, dtype=np.int64)),
    }
)
schema = table.schema.set(table.schema.get_field_index("req"), pa.field("req", pa.float64(), nullable=False))
table = table.cast(schema)

for name, version, codec in [("v1-snappy", "1.0", "snappy"), ("v2-zstd", "2.0", "zstd"), ("v1-none", "1.0", "none")]:
    pq.write_table(
        table,
        f"tests/data/numbers-{name}.parquet",
        row_group_size=500,
        data_page_size=512,
        write_batch_size=64,
        data_page_version=version,
        compression=codec,
        use_dictionary=["dict", "few", "i32", "label"],
        dictionary_pagesize_limit=1024,
        column_encoding={"delta": "DELTA_BINARY_PACKED"},
    )
    metadata = pq.ParquetFile(f"tests/data/numbers-{name}.parquet").metadata
    chunk = metadata.row_group(0).column(1)
    print(name, metadata.num_row_groups, "row groups;", "dict column:", chunk.encodings, chunk.compression)

# tests/data/numbers-bad.parquet: cells nnc refuses, late in the file: a
# double beyond f32's range (row 700) and an infinity (row 900, and row
# 700 of a column to the right, which the left one's error precedes).
huge, infinite = np.zeros(rows), np.zeros(rows)
huge[699] = 1e39
infinite[[699, 899]] = np.inf
bad = pa.table({"huge": pa.array(huge), "infinite": pa.array(infinite), "label": table["label"]})
pq.write_table(bad, "tests/data/numbers-bad.parquet", row_group_size=500, data_page_size=512, write_batch_size=64)
