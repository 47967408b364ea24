# Reference values for siamese-report's metric tests (run with the bench venv:
# torch, scikit-learn, pytorch-metric-learning). The embedding is integer arithmetic / 1024,
# exact in f32 (/16384), so the Rust test rebuilds it bit for bit.
import numpy as np, torch
from sklearn.metrics import (normalized_mutual_info_score, adjusted_mutual_info_score,
                             roc_auc_score, roc_curve)
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.distances import LpDistance

n = 300
idx = np.arange(n)
labels = (idx * 7) % 5
x = labels * 1.5 + ((idx * idx * 7919 + 13) % 65521) / 16384.0
y = (labels % 2) * 2.0 + ((idx * 104729 + idx * idx * 31) % 65519) / 16384.0
emb = np.stack([x, y], 1).astype(np.float32)
d = np.sqrt(((emb[:, None, :].astype(np.float64) - emb[None, :, :]) ** 2).sum(-1))
iu = np.triu_indices(n, 1)
print("distinct distances:", len(np.unique(d[iu])) == len(iu[0]))

from pytorch_metric_learning.utils.inference import CustomKNN
calc = AccuracyCalculator(include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
                          knn_func=CustomKNN(LpDistance(normalize_embeddings=False)), k="max_bin_count")
acc = calc.get_accuracy(torch.tensor(emb), torch.tensor(labels))
print("pml", {k: repr(float(v)) for k, v in acc.items()})

pred = (idx * idx + labels) % 4
print("nmi", repr(normalized_mutual_info_score(labels, pred)))
print("ami", repr(adjusted_mutual_info_score(labels, pred)))
pred2 = np.where(idx % 10 == 0, (labels + 1) % 5, labels)
print("nmi2", repr(normalized_mutual_info_score(labels, pred2)))
print("ami2", repr(adjusted_mutual_info_score(labels, pred2)))

def balanced_pairs(labels):
    n = len(labels); out = []
    for i in range(n):
        for same in (True, False):
            for s in range(1, n):
                j = (i + s) % n
                if (labels[j] == labels[i]) == same:
                    out.append((i, j)); break
    return out
pairs = balanced_pairs(labels)
dist = np.array([d[i, j] for i, j in pairs]); same = np.array([labels[i] == labels[j] for i, j in pairs])
print("auc", repr(roc_auc_score(same, -dist)))
fpr, tpr, _ = roc_curve(same, -dist, drop_intermediate=False)
print("tar_at_far_0.01", repr(tpr[fpr <= 0.01].max()))
# EER: the crossing of fpr and 1 - tpr, linearly interpolated along the curve
g = 1 - tpr - fpr
k = np.where((g[:-1] >= 0) & (g[1:] <= 0))[0][0]
t = 0 if g[k] == g[k + 1] else g[k] / (g[k] - g[k + 1])
print("eer", repr(fpr[k] + t * (fpr[k + 1] - fpr[k])))
vals, counts = np.unique(d[iu], return_counts=True)
print("tied distance values:", vals[counts > 1], "pairs:", [(int(a), int(b)) for a, b in zip(*iu) if d[a, b] in set(vals[counts > 1])])
