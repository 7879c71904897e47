#!/usr/bin/env bash
# Fixed point on real jets: quantize each model at 16, 10, 8 and 6 bits and with
# --auto (calibrated on the training slice), run the golden model on the test
# split with `bxflow eval`, and score it against float with evaluate.py.
# Writes report/<model>_<precision>.json and ROC plots, and report/SUMMARY.md.
# Usage (from the repository root, after `cargo build --release`):
#   bash models/jets/report.sh
set -euo pipefail
cd "$(dirname "$0")"
bx=../../target/release/bxflow
out=report
mkdir -p "$out"
summary="$out/SUMMARY.md"
echo "| model | precision | accuracy | float accuracy | argmax agreement | mean AUC or anomaly AUC (fixed) | same (float) |" > "$summary"
echo "|---|---|---|---|---|---|---|" >> "$summary"
for spec in "tagger jet_tagger test_features.npy calib_features.npy" \
            "tagger_qat jet_tagger_qat test_features.npy calib_features.npy" \
            "conv1d jet_conv1d test_constituents.npy calib_constituents.npy" \
            "gru jet_gru test_constituents.npy calib_constituents.npy" \
            "autoencoder jet_autoencoder test_features.npy calib_features.npy"; do
  set -- $spec
  kind=$1; model=$2; test=$3; calib=$4
  for prec in "fixed<16,6>" "fixed<10,4>" "fixed<8,3>" "fixed<6,2>" auto; do
    tag=$(echo "$prec" | tr -d '<>' | tr ',' '_')
    if [ "$prec" = auto ]; then
      if ! $bx quantize "$model.onnx" -o "$out/$model-$tag.bxq" --auto --calib "$calib" > "$out/$model-$tag.txt" 2>&1; then
        echo "| $model | \`auto\` | $(tail -1 "$out/$model-$tag.txt") |||||" >> "$summary"
        continue
      fi
    else
      $bx quantize "$model.onnx" -o "$out/$model-$tag.bxq" --precision "$prec" --calib "$calib" > "$out/$model-$tag.txt"
    fi
    $bx eval "$out/$model-$tag.bxq" --input "$test" --output "$out/$model-$tag.npy" 2>/dev/null
    extra=()
    [ "$kind" = autoencoder ] && extra=(--features "$test")
    python3 evaluate.py --model "$kind" --pred "$out/$model-$tag.npy" --labels test_labels.npy \
      --ref "test_pred_${kind}_float.npy" --json "$out/$model-$tag.json" "${extra[@]}" \
      $(python3 -c "import matplotlib" 2>/dev/null && echo --roc "$out/$model-$tag.png") > /dev/null
    python3 - "$out/$model-$tag.json" "$model" "$prec" >> "$summary" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m, ref = r.get("metrics", {}), r.get("ref_metrics", {})
def mean_auc(d):
    a = d.get("auc")
    if isinstance(a, dict):
        return sum(a.values()) / len(a)
    return d.get("anomaly_auc", d.get("auc_all", a))
f = lambda v: "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
print(f"| {sys.argv[2]} | `{sys.argv[3]}` | {f(m.get('accuracy'))} | {f(ref.get('accuracy'))} | {f(r.get('argmax_agreement'))} | {f(mean_auc(m))} | {f(mean_auc(ref))} |")
PY
  done
done
echo "wrote $summary"
