#!/usr/bin/env python3
"""Prints the scikit-learn reference values used by tests/cpu/test_eval_tsne.cpp and
tests/cpu/test_eval_invariance.cpp (the tests need no Python; the values are pasted there).

Needs numpy and scikit-learn (Debian: apt-get install -y python3-sklearn; values recorded with 1.2.1):
    /usr/bin/python3 tests/tools/make_eval_invariance_golden.py
"""
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE, trustworthiness

print("scikit-learn", sklearn.__version__)

# trustworthiness_matches_scikit_learn
i = np.arange(50)[:, None]
j = np.arange(6)[None, :]
X = np.sin(0.7 * i + 1.3 * j) + np.cos(0.37 * i * j + 0.1 * i)
E = X[:, :2] + 0.3 * np.sin(1.7 * i + 2.9 * np.arange(2)[None, :])
for k in (5, 12):
    print(f"trustworthiness k={k}: {trustworthiness(X, E, n_neighbors=k)!r}")

# kl_divergence_matches_scikit_learn
i = np.arange(200)[:, None]
j = np.arange(10)[None, :]
X = np.where(j == i % 4, 5.0, 0.0) + np.sin(1.3 * i + 0.7 * j * j) + 0.5 * np.cos(0.21 * i * j)
t = TSNE(method="exact", random_state=0).fit(X)
print(f"tsne exact: kl {t.kl_divergence_!r}, n_iter {t.n_iter_}, "
      f"trustworthiness(5) {trustworthiness(X, t.embedding_, n_neighbors=5)!r}")

# logistic_regression_matches_scikit_learn
i = np.arange(40)[:, None]
j = np.arange(3)[None, :]
X = np.sin(0.9 * i + 1.7 * j) + 0.5 * np.cos(0.3 * i * j)
y = ((np.sin(2.3 * i[:, 0]) + X[:, 0]) > 0).astype(int)
print("positives", y.sum())
for C in (0.7, 100.0):
    m = LogisticRegression(C=C, class_weight="balanced", solver="newton-cg", tol=1e-12,
                           max_iter=10000).fit(X, y)
    print(f"C={C!r}: coef {[float(v) for v in m.coef_[0]]!r}, intercept {float(m.intercept_[0])!r}")
