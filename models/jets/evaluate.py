#!/usr/bin/env python3
"""Score jet-model predictions stored as .npy (float or bxflow fixed point).

Taggers (jet_tagger, jet_conv1d, jet_tagger_qat): --pred is [N,5] class
probabilities (or logits) in the order q, g, W, Z, t. Reported: accuracy,
per-class one-vs-rest ROC AUC, and per-class background rejection 1/eps_B at
50 % signal efficiency (signal = the class, background = the other four,
score = that class's output).

Autoencoder (jet_autoencoder): --pred is the [N,16] reconstruction (then
--features, the model's input, is needed; score = mean squared error over the
16 features) or an [N] score. QCD (q, g) is background, W/Z/t are anomalies;
reported: AUC for all anomalies and per anomaly class, and QCD rejection at
50 % anomaly efficiency.

With --ref (e.g. the float model's output) the same metrics are computed for
the reference too, plus the fraction of jets whose arg-max class agrees (for
taggers), and both appear in the ROC plot (reference dashed).

Example:
  bxflow eval jet_tagger.bxq --input test_features.npy --output y.npy
  python evaluate.py --model tagger --pred y.npy --labels test_labels.npy \\
      --ref float.npy --json out.json --roc roc.png
"""
import argparse
import json
import sys

import numpy as np

CLASSES = ["q", "g", "W", "Z", "t"]


def roc(bkg_score, sig_score):
    """ROC from scores (higher = more signal-like): (eff_bkg, eff_sig, auc)."""
    s = np.concatenate([sig_score, bkg_score]).astype(np.float64)
    t = np.concatenate([np.ones(len(sig_score)), np.zeros(len(bkg_score))])
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    # group ties so equal scores form one threshold (matters for fixed point)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(t)[last]
    fp = np.cumsum(1 - t)[last]
    tpr = np.r_[0.0, tp / max(t.sum(), 1)]
    fpr = np.r_[0.0, fp / max((1 - t).sum(), 1)]
    trapz = getattr(np, "trapezoid", None) or np.trapz  # numpy 2 / numpy 1
    auc = float(trapz(tpr, fpr))
    return fpr, tpr, auc


def rejection_at(fpr, tpr, eff=0.5):
    f = float(np.interp(eff, tpr, fpr))
    return float(1.0 / f) if f > 0 else float("inf")


def ae_score(pred, features):
    pred = np.asarray(pred, dtype=np.float64)
    if pred.ndim == 1:
        return pred
    if features is None:
        raise SystemExit("autoencoder reconstruction needs --features")
    return np.mean((pred - np.asarray(features, dtype=np.float64)) ** 2, axis=1)


def score(kind, pred, labels, features=None):
    labels = np.asarray(labels).astype(np.int64)
    pred = np.asarray(pred)
    if len(pred) != len(labels):
        raise SystemExit(f"{len(pred)} predictions for {len(labels)} labels")
    out = {"n_jets": int(len(labels))}
    if kind == "tagger":
        pred = pred.reshape(len(labels), -1)
        out["accuracy"] = float((pred.argmax(axis=1) == labels).mean())
        out["auc"], out["rejection_at_50"] = {}, {}
        for c, name in enumerate(CLASSES):
            fpr, tpr, auc = roc(pred[labels != c, c], pred[labels == c, c])
            out["auc"][name] = auc
            out["rejection_at_50"][name] = rejection_at(fpr, tpr)
    elif kind == "autoencoder":
        s = ae_score(pred, features)
        qcd = labels <= 1
        fpr, tpr, auc = roc(s[qcd], s[~qcd])
        out["auc_all"] = auc
        out["qcd_rejection_at_50"] = rejection_at(fpr, tpr)
        out["auc"] = {}
        for c in (2, 3, 4):
            out["auc"][CLASSES[c]] = roc(s[qcd], s[labels == c])[2]
        out["mean_score_qcd"] = float(s[qcd].mean())
    else:
        raise SystemExit(f"unknown model kind {kind}")
    return out


def plot_roc(kind, preds, labels, features, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.asarray(labels).astype(np.int64)
    fig, ax = plt.subplots(figsize=(6, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (name, pred) in enumerate(preds.items()):
        style = "-" if k == 0 else "--"
        pred = np.asarray(pred)
        if kind == "tagger":
            pred = pred.reshape(len(labels), -1)
            curves = [(CLASSES[c], pred[labels != c, c], pred[labels == c, c]) for c in range(5)]
        else:
            s = ae_score(pred, features)
            qcd = labels <= 1
            curves = [(f"{CLASSES[c]} vs QCD", s[qcd], s[labels == c]) for c in (2, 3, 4)]
        for j, (cname, b, sg) in enumerate(curves):
            fpr, tpr, auc = roc(b, sg)
            ok = fpr > 0
            ax.semilogy(tpr[ok], 1 / fpr[ok], style, color=colors[j % len(colors)],
                        label=f"{cname} {name}: AUC {auc:.3f}")
    ax.set_xlabel("signal efficiency")
    ax.set_ylabel("background rejection 1/eps_B")
    ax.set_xlim(0, 1)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True,
                    choices=["tagger", "conv1d", "tagger_qat", "gru", "autoencoder"])
    ap.add_argument("--pred", required=True, help=".npy model output")
    ap.add_argument("--labels", required=True, help="test_labels.npy")
    ap.add_argument("--features", help="test_features.npy (autoencoder input)")
    ap.add_argument("--ref", help=".npy reference output (e.g. float) to compare")
    ap.add_argument("--name", default="fixed", help="legend name of --pred")
    ap.add_argument("--json", help="write metrics here")
    ap.add_argument("--roc", help="write a ROC plot (png) here")
    ap.add_argument("--max-drop", type=float,
                    help="with --ref: exit 1 if accuracy (tagger) or AUC "
                         "(autoencoder) is more than this below the reference, "
                         "e.g. 0.01 for 1 %% absolute")
    args = ap.parse_args()
    kind = "autoencoder" if args.model == "autoencoder" else "tagger"
    labels = np.load(args.labels)
    feats = np.load(args.features) if args.features else None
    pred = np.load(args.pred)
    out = {"model": args.model, "pred": args.pred, "metrics": score(kind, pred, labels, feats)}
    preds = {args.name: pred}
    if args.ref:
        ref = np.load(args.ref)
        out["ref"] = args.ref
        out["ref_metrics"] = score(kind, ref, labels, feats)
        if kind == "tagger":
            out["argmax_agreement"] = float(
                (pred.reshape(len(labels), -1).argmax(1) == ref.reshape(len(labels), -1).argmax(1)).mean())
            out["accuracy_drop"] = out["ref_metrics"]["accuracy"] - out["metrics"]["accuracy"]
        preds["float"] = ref
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    if args.roc:
        plot_roc(kind, preds, labels, feats, args.roc)
    if args.max_drop is not None:
        if not args.ref:
            raise SystemExit("--max-drop needs --ref")
        key = "accuracy" if kind == "tagger" else "auc_all"
        drop = out["ref_metrics"][key] - out["metrics"][key]
        ok = drop <= args.max_drop
        print(f"{args.model}: {key} {out['metrics'][key]:.4f} vs reference "
              f"{out['ref_metrics'][key]:.4f}, drop {drop:+.4f} "
              f"(limit {args.max_drop}): {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
