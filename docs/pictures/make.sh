#!/bin/sh
# Regenerates the README's pictures from the shipped examples (deterministic:
# the same build gives the same files). Run from the repository root:
#   sh docs/pictures/make.sh
set -e
nnc=${NNC:-target/release/nnc}
out=docs/pictures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
$nnc draw examples/seed.nn -o $out/seed.png
$nnc draw examples/skip.nn examples/iris.csv -o $out/skip.png
$nnc draw examples/penguins.nn examples/penguins.csv -o $out/penguins.png
$nnc run examples/iris.nn examples/iris.csv --quiet --save-weights "$tmp/iris.safetensors" > /dev/null
$nnc draw examples/iris.nn examples/iris.csv --weights "$tmp/iris.safetensors" -o $out/iris-weights.png
$nnc plot examples/minimize.nn -o $out/descent.png
$nnc run examples/momentum.nn examples/iris.csv --quiet --validation 0.2 --plot $out/momentum-curves.png > /dev/null
