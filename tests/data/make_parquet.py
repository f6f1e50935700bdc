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
