"""Estimators (baseline, HistGradientBoosting, PyTorch MLP), their metrics, importance and contributions.

Pure computation on pandas frames: no database, no registry (that is mlops/services.py).
Every estimator exposes `predict(frame) -> np.ndarray` (days for lead time, probability for risk).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import ThreadpoolController

from mlops.choices import REGRESSION_TARGETS, Algorithm, ModelName
from mlops.datasets import CATEGORICAL

# One thread for OpenMP (scikit-learn) and torch: on a busy 2-core machine, oversubscribed thread
# pools made HistGradientBoosting 6x slower than single-threaded for these small matrices.
THREADS = 1
_CONTROLLER: ThreadpoolController | None = None


def _single_thread():
    """Limit OpenMP/BLAS pools to THREADS; the controller inspects the loaded libraries once, not per call."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=THREADS)


RISK_SMOOTHING = 5.0  # pseudo-orders pulling a product's rate towards its family's rate
MAPE_MIN_DAYS = 0.5  # MAPE ignores targets under half a day (near-zero denominators)


def _family_codes(frame: pd.DataFrame, codes: dict[str, int]) -> np.ndarray:
    return frame["family"].map(codes).fillna(-1).to_numpy(dtype=float)


# --- Baseline ------------------------------------------------------------------------------------

class Baseline:
    """Lead time: product median over the training window, then family, then global median.
    Risk: product's historical severe-defect rate over the training window, smoothed towards the
    family's rate with RISK_SMOOTHING pseudo-orders, then family, then global. Deterministic."""

    algorithm = Algorithm.BASELINE

    def __init__(self, params: dict):
        self.params = params

    @classmethod
    def fit(cls, name: str, train: pd.DataFrame, target: str) -> Baseline:
        y = train[target].astype(float)
        if name == ModelName.LEAD_TIME:
            product = train.groupby("product_id")[target].median()
            family = train.groupby("family")[target].median()
            glob = float(y.median()) if len(y) else 0.0
        else:
            glob = float(y.mean()) if len(y) else 0.0
            fam_stats = train.groupby("family")[target].agg(["sum", "count"])
            family = fam_stats["sum"] / fam_stats["count"]
            prod_stats = train.groupby(["product_id", "family"])[target].agg(["sum", "count"]).reset_index()
            prior = prod_stats["family"].map(family).fillna(glob)
            rate = (prod_stats["sum"] + RISK_SMOOTHING * prior) / (prod_stats["count"] + RISK_SMOOTHING)
            product = pd.Series(rate.to_numpy(), index=prod_stats["product_id"]).groupby(level=0).mean()
        return cls({
            "name": str(name),
            "product": {str(int(k)): float(v) for k, v in product.items()},
            "family": {str(k): float(v) for k, v in family.items()},
            "global": glob,
        })

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        product = frame["product_id"].astype("int64").astype(str).map(self.params["product"])
        family = frame["family"].astype(str).map(self.params["family"])
        return product.fillna(family).fillna(self.params["global"]).to_numpy(dtype=float)

    def source(self, frame: pd.DataFrame) -> list[str]:
        """Which level answered each row: product, family or global."""
        out = []
        for product_id, family in zip(frame["product_id"], frame["family"], strict=True):
            if str(int(product_id)) in self.params["product"]:
                out.append("product")
            elif str(family) in self.params["family"]:
                out.append("family")
            else:
                out.append("global")
        return out


class EtaBaseline:
    """ETA: median remaining days of (family, phase just finished) over the training window, then the
    family's median, then the global median. Deterministic; its tables live in the registry's params."""

    algorithm = Algorithm.BASELINE

    def __init__(self, params: dict):
        self.params = params

    @staticmethod
    def _keys(frame: pd.DataFrame) -> pd.Series:
        phase = frame["last_phase_id"].fillna(-1).astype("int64").astype(str)
        return frame["family"].astype(str) + "|" + phase

    @classmethod
    def fit(cls, name: str, train: pd.DataFrame, target: str) -> EtaBaseline:
        y = train[target].astype(float)
        family_phase = train.groupby(cls._keys(train))[target].median()
        family = train.groupby("family")[target].median()
        return cls({
            "name": str(name),
            "family_phase": {str(k): float(v) for k, v in family_phase.items()},
            "family": {str(k): float(v) for k, v in family.items()},
            "global": float(y.median()) if len(y) else 0.0,
        })

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        family_phase = self._keys(frame).map(self.params["family_phase"])
        family = frame["family"].astype(str).map(self.params["family"])
        return family_phase.fillna(family).fillna(self.params["global"]).to_numpy(dtype=float)

    def source(self, frame: pd.DataFrame) -> list[str]:
        """Which level answered each row: family_phase, family or global."""
        out = []
        for key, family in zip(self._keys(frame), frame["family"], strict=True):
            if key in self.params["family_phase"]:
                out.append("family_phase")
            elif str(family) in self.params["family"]:
                out.append("family")
            else:
                out.append("global")
        return out


def baseline_class(name: str):
    return EtaBaseline if name == ModelName.ETA else Baseline


def baseline_from_params(params: dict):
    """The baseline estimator stored in a registry row's params."""
    return baseline_class(params.get("name", ""))(params)


# --- scikit-learn --------------------------------------------------------------------------------

class HgbModel:
    """HistGradientBoosting on the numeric features plus the family as a native categorical."""

    algorithm = Algorithm.HGB

    def __init__(self, estimator, numeric: list[str], family_codes: dict[str, int], name: str):
        self.estimator = estimator
        self.numeric = numeric
        self.family_codes = family_codes
        self.name = name

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        numeric = frame[self.numeric].to_numpy(dtype=float)
        return np.column_stack([_family_codes(frame, self.family_codes), numeric])

    @classmethod
    def fit(cls, name: str, train: pd.DataFrame, target: str, numeric: list[str], seed: int, params: dict):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        families = sorted(train["family"].astype(str).unique())
        codes = {family: i for i, family in enumerate(families)}
        common = {"categorical_features": [0], "random_state": seed, **params}
        if name in REGRESSION_TARGETS:
            estimator = HistGradientBoostingRegressor(loss="absolute_error", **common)
        else:
            estimator = HistGradientBoostingClassifier(**common)
        model = cls(estimator, numeric, codes, str(name))
        with _single_thread():
            estimator.fit(model.matrix(train), train[target].to_numpy(dtype=float))
        return model

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = self.matrix(frame)
        with _single_thread():
            if self.name in REGRESSION_TARGETS:
                return np.clip(self.estimator.predict(x), 0.0, None)
            proba = self.estimator.predict_proba(x)
        return proba[:, 1] if proba.shape[1] > 1 else np.zeros(len(x))

    def dump(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump({"algorithm": "hgb", "estimator": self.estimator, "numeric": self.numeric,
                     "family_codes": self.family_codes, "name": self.name}, buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str) -> HgbModel:
        blob = joblib.load(path)
        return cls(blob["estimator"], blob["numeric"], blob["family_codes"], blob["name"])


# --- PyTorch -------------------------------------------------------------------------------------

def _torch_net(config: dict):
    import torch
    from torch import nn

    class TabularMLP(nn.Module):
        """Standardised numeric features + missing flags, an embedding for product and for family."""

        def __init__(self):
            super().__init__()
            self.product = nn.Embedding(config["n_products"], config["product_dim"])
            self.family = nn.Embedding(config["n_families"], config["family_dim"])
            width = 2 * config["n_numeric"] + config["product_dim"] + config["family_dim"]
            self.net = nn.Sequential(
                nn.Linear(width, config["hidden"]), nn.ReLU(),
                nn.Linear(config["hidden"], config["hidden"]), nn.ReLU(),
                nn.Linear(config["hidden"], 1),
            )

        def forward(self, numeric, product, family):
            x = torch.cat([numeric, self.product(product), self.family(family)], dim=1)
            return self.net(x).squeeze(1)

    return TabularMLP()


class MlpModel:
    """A small MLP (two hidden layers) with embeddings; lead time trained with L1 loss on
    target / training median, risk with binary cross-entropy. Products unseen in training share
    embedding 0, families likewise."""

    algorithm = Algorithm.MLP

    def __init__(self, net, config: dict):
        self.net = net
        self.config = config

    def tensors(self, frame: pd.DataFrame):
        import torch

        cfg = self.config
        raw = frame[cfg["numeric"]].to_numpy(dtype=float)
        missing = np.isnan(raw)
        scaled = (np.where(missing, np.array(cfg["fill"]), raw) - np.array(cfg["mean"])) / np.array(cfg["std"])
        numeric = np.column_stack([scaled, missing.astype(float)]).astype(np.float32)
        product = frame["product_id"].astype("int64").astype(str).map(cfg["products"]).fillna(0).astype("int64")
        family = frame["family"].astype(str).map(cfg["families"]).fillna(0).astype("int64")
        return (torch.from_numpy(numeric), torch.from_numpy(np.array(product.to_numpy())),
                torch.from_numpy(np.array(family.to_numpy())))

    @classmethod
    def fit(cls, name: str, train: pd.DataFrame, validation: pd.DataFrame, target: str, numeric: list[str],
            seed: int, params: dict) -> MlpModel:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(THREADS)
        try:
            return cls._fit(name, train, validation, target, numeric, seed, params)
        finally:
            torch.set_num_threads(threads)

    @classmethod
    def _fit(cls, name, train, validation, target, numeric, seed, params):
        import torch

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        raw = train[numeric].to_numpy(dtype=float)
        fill = np.nan_to_num(np.nanmedian(np.where(np.isnan(raw), np.nan, raw), axis=0)) if len(raw) else np.zeros(len(numeric))
        filled = np.where(np.isnan(raw), fill, raw)
        std = filled.std(axis=0)
        products = train["product_id"].astype("int64").value_counts()
        products = sorted(int(p) for p in products[products >= params.get("min_product_rows", 2)].index)
        families = sorted(train["family"].astype(str).unique())
        y_train = train[target].to_numpy(dtype=float)
        scale = float(np.median(y_train)) if name in REGRESSION_TARGETS and len(y_train) else 1.0
        config = {
            "name": str(name), "numeric": numeric, "fill": fill.tolist(), "mean": filled.mean(axis=0).tolist(),
            "std": np.where(std > 0, std, 1.0).tolist(),
            "products": {str(p): i + 1 for i, p in enumerate(products)},
            "families": {f: i + 1 for i, f in enumerate(families)},
            "n_products": len(products) + 1, "n_families": len(families) + 1, "n_numeric": len(numeric),
            "product_dim": params.get("product_dim", 8), "family_dim": params.get("family_dim", 3),
            "hidden": params.get("hidden", 64), "scale": scale if scale > 0 else 1.0,
        }
        model = cls(_torch_net(config), config)
        xs = model.tensors(train)
        y = torch.tensor(y_train / config["scale"], dtype=torch.float32)
        val_xs = model.tensors(validation) if len(validation) else None
        y_val = validation[target].to_numpy(dtype=float)
        loss_fn = torch.nn.L1Loss() if name in REGRESSION_TARGETS else torch.nn.BCEWithLogitsLoss()
        optimizer = torch.optim.Adam(model.net.parameters(), lr=params.get("lr", 3e-3),
                                     weight_decay=params.get("weight_decay", 1e-4))
        generator = torch.Generator().manual_seed(seed)
        batch = params.get("batch_size", 256)
        best_state, best_score = None, np.inf
        for _epoch in range(params.get("epochs", 40)):
            model.net.train()
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), batch):
                idx = order[start:start + batch]
                optimizer.zero_grad()
                loss = loss_fn(model.net(xs[0][idx], xs[1][idx], xs[2][idx]), y[idx])
                loss.backward()
                optimizer.step()
            if val_xs is not None:
                # keep the epoch with the best validation loss (early stopping without stopping)
                pred = model._predict_tensors(val_xs)
                if name in REGRESSION_TARGETS:
                    score = float(np.mean(np.abs(pred - y_val)))
                else:
                    score = brier(y_val, pred)
                if score < best_score:
                    best_score = score
                    best_state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
        if best_state is not None:
            model.net.load_state_dict(best_state)
        model.net.eval()
        return model

    def _predict_tensors(self, xs) -> np.ndarray:
        import torch

        self.net.eval()
        with torch.no_grad():
            out = self.net(*xs).numpy().astype(float)
        if self.config["name"] in REGRESSION_TARGETS:
            return np.clip(out * self.config["scale"], 0.0, None)
        return 1.0 / (1.0 + np.exp(-out))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self._predict_tensors(self.tensors(frame))

    def dump(self) -> bytes:
        import torch

        buffer = io.BytesIO()
        torch.save({"algorithm": "mlp", "config": self.config, "state_dict": self.net.state_dict()}, buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str) -> MlpModel:
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=True)
        net = _torch_net(blob["config"])
        net.load_state_dict(blob["state_dict"])
        net.eval()
        return cls(net, blob["config"])


# --- Metrics -------------------------------------------------------------------------------------

def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2)) if len(y) else float("nan")


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if not len(y):
        return {"n": 0, "mae": None, "mape": None, "p90_abs_error": None}
    err = np.abs(pred - y)
    big = y >= MAPE_MIN_DAYS
    return {
        "n": int(len(y)),
        "mae": round(float(err.mean()), 4),
        "mape": round(float(np.mean(err[big] / y[big])), 4) if big.any() else None,
        "p90_abs_error": round(float(np.percentile(err, 90)), 4),
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(mask.sum()),
                          "mean_predicted": round(float(p[mask].mean()), 4),
                          "observed_rate": round(float(y[mask].mean()), 4)})
    return table


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if not len(y):
        return {"n": 0, "roc_auc": None, "brier": None, "base_rate": None, "calibration": []}
    auc = round(float(roc_auc_score(y, p)), 4) if len(np.unique(y)) == 2 else None
    return {"n": int(len(y)), "roc_auc": auc, "brier": round(brier(y, p), 4),
            "base_rate": round(float(y.mean()), 4), "calibration": calibration_table(y, p)}


def evaluate(name: str, model, frame: pd.DataFrame, target: str) -> dict:
    y = frame[target].to_numpy(dtype=float)
    pred = model.predict(frame) if len(frame) else np.array([])
    return regression_metrics(y, pred) if name in REGRESSION_TARGETS else classification_metrics(y, pred)


def residual_quantiles(y: np.ndarray, pred: np.ndarray) -> dict:
    """q10 / q90 of validation residuals (actual - predicted): the 80% interval around a prediction."""
    if not len(y):
        return {}
    residual = np.asarray(y, dtype=float) - np.asarray(pred, dtype=float)
    return {"q10": float(np.percentile(residual, 10)), "q90": float(np.percentile(residual, 90)), "n": int(len(y))}


# --- Explanations --------------------------------------------------------------------------------

def _score(name: str, y: np.ndarray, pred: np.ndarray) -> float:
    """Higher is better: -MAE for lead time and ETA, ROC AUC (else -Brier) for risk."""
    if name in REGRESSION_TARGETS:
        return -float(np.mean(np.abs(pred - y)))
    if len(np.unique(y)) == 2:
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, pred))
    return -brier(y, pred)


def permutation_importance(name: str, model, frame: pd.DataFrame, target: str, features: list[str],
                           seed: int = 0, repeats: int = 3) -> list[dict]:
    """Mean drop of the score (−MAE, or ROC AUC) when one feature's column is shuffled, on validation rows."""
    if len(frame) < 2:
        return []
    rng = np.random.default_rng(seed)
    y = frame[target].to_numpy(dtype=float)
    base = _score(name, y, model.predict(frame))
    out = []
    for feature in features:
        drops = []
        for _ in range(repeats):
            shuffled = frame.copy()
            shuffled[feature] = frame[feature].to_numpy()[rng.permutation(len(frame))]
            drops.append(base - _score(name, y, model.predict(shuffled)))
        out.append({"feature": feature, "importance": round(float(np.mean(drops)), 5),
                    "std": round(float(np.std(drops)), 5)})
    return sorted(out, key=lambda item: -item["importance"])


def reference_row(train: pd.DataFrame, numeric: list[str]) -> dict:
    """The 'typical order' explanations are measured against: numeric medians, most frequent categories."""
    ref = {}
    for column in CATEGORICAL:
        mode = train[column].mode()
        ref[column] = (int(mode.iloc[0]) if column == "product_id" else str(mode.iloc[0])) if len(mode) else None
    for column in numeric:
        value = train[column].median()
        ref[column] = None if pd.isna(value) else float(value)
    return ref


def shapley_contributions(model, row: pd.DataFrame, reference: dict, features: list[str],
                          permutations: int = 64, seed: int = 0) -> tuple[list[dict], float, float]:
    """Sampled Shapley values of one prediction against a reference order.

    For each of `permutations` random feature orders (seeded), features are switched one by one
    from the reference's value to the order's value and each switch is credited with the change of
    the prediction; credits are averaged. The contributions sum exactly to
    prediction(order) - prediction(reference). Returns (contributions, prediction, reference prediction)."""
    rng = np.random.default_rng(seed)
    n_features = len(features)
    ranks = np.array([rng.permutation(n_features) for _ in range(permutations)])  # ranks[p, j]: step of j
    steps = np.arange(n_features + 1)
    # mask[p, k, j]: after k switches of permutation p, feature j holds the order's value
    mask = ranks[:, None, :] < steps[None, :, None]
    mask = mask.reshape(-1, n_features)
    hybrid = pd.DataFrame({
        feature: np.where(mask[:, j], row[feature].iloc[0], reference.get(feature))
        for j, feature in enumerate(features)
    })
    for feature in features:
        if feature == "family":
            hybrid[feature] = hybrid[feature].astype(str)
        elif feature == "product_id":
            hybrid[feature] = hybrid[feature].astype("int64")
        else:
            hybrid[feature] = pd.to_numeric(hybrid[feature], errors="coerce").astype(float)
    values = model.predict(hybrid).reshape(permutations, n_features + 1)
    deltas = np.diff(values, axis=1)  # deltas[p, k]: change at step k+1
    contributions = np.zeros(n_features)
    for p in range(permutations):
        order = np.argsort(ranks[p])  # features in switching order
        contributions[order] += deltas[p]
    contributions /= permutations
    out = [{"feature": f, "value": _plain(row[f].iloc[0]), "reference": reference.get(f),
            "contribution": round(float(c), 5)} for f, c in zip(features, contributions, strict=True)]
    out.sort(key=lambda item: -abs(item["contribution"]))
    return out, float(values[0, -1]), float(values[0, 0])


def _plain(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


@dataclass
class Fitted:
    """A trained estimator with its evaluation, ready for the registry."""

    algorithm: str
    model: object
    params: dict
    metrics: dict
    residuals: dict
    importance: list
    seconds: float
