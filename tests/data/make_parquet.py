"""Writes tests/data/penguins.parquet: a Parquet copy of examples/penguins.csv
(pyarrow's defaults: snappy, dictionary-encoded strings; `NA` cells as nulls;
float, integer and string columns). Run from the repository root:

    python3 tests/data/make_parquet.py
"""
import pyarrow.csv as pc
import pyarrow.parquet as pq

table = pc.read_csv(
    "examples/penguins.csv",
    convert_options=pc.ConvertOptions(null_values=["NA"], strings_can_be_null=True),
)
pq.write_table(table, "tests/data/penguins.parquet")
print(table.schema)

# tests/data/dates.parquet: a date column (which nnc does not read) beside
# numbers, for the error that names it.
import datetime

import pyarrow as pa

dates = pa.table(
    {
        "x": pa.array([1.5, 2.5, 3.5]),
        "day": pa.array([datetime.date(2024, 1, d) for d in (1, 2, 3)]),
        "y": pa.array([0.0, 1.0, 0.0]),
    }
)
pq.write_table(dates, "tests/data/dates.parquet")
print(dates.schema)
