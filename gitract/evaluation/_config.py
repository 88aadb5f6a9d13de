"""Configuration of a block-classifier track."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gitract.features import make_featurizer
from gitract.models.pipelines import make_lgbm, make_rf
from gitract.postprocessing import DEFAULT_GRID
from gitract.probmaps import INTERPOLATIONS

CLASSIFIERS: tuple[str, ...] = ("rf", "lightgbm", "cnn")


@dataclass(frozen=True)
class BlockTrackConfig:
    """Everything that defines a block-classifier track (frozen; JSON via ``to_dict``).

    Attributes
    ----------
    classifier : {"rf", "lightgbm", "cnn"}
        ``"cnn"`` is :class:`gitract.models.cnn.BlockCNNClassifier` on raw blocks.
    block_size : int
        Positive odd block size (33 or 63 in the study).
    step : int
        Stride of the prediction grid (probability maps are interpolated in between).
    features : {"filters", "raw"}
        Featurizer kind; ``feature_params`` go to ``make_featurizer``. For the CNN the
        raw featurizer's ``context`` follows ``model_params.context_features`` (the CNN
        then reads the context columns the featurizer appends); written out, it must
        agree.
    n_per_class : int
        Training blocks per organ class and slice (fewer when the organ is smaller).
    background_cap : int
        Background blocks per slice; ``border_fraction`` of them from the ring around
        the organs, the rest inside the body (``body_background``) or anywhere.
    training : {"blocks", "dense"}
        How the CNN trains (``classifier="cnn"`` only): on the sampled blocks, or densely
        on every block centred in crops of whole training slices
        (:meth:`BlockCNNClassifier.fit_dense`; the sampling keys ``n_per_class``,
        ``background_cap``, ``border_fraction`` and ``max_train_blocks`` then do not apply).
    max_train_slices : int or None
        Cap of the training slices: with ``n`` training slices a stack of ``s`` slices
        keeps a seeded ``ceil(max_train_slices * s / n)`` of them (dense training holds
        whole slices; None: all).
    max_train_blocks : int or None
        Cap of the whole training sample: with ``n`` training slices each keeps at most
        ``ceil(max_train_blocks / n)`` of its sampled blocks (a seeded subsample), so the
        sample, and the memory it takes, stop growing with the dataset (None: no cap).
    interpolation : {"nearest", "linear", "cubic"}
    threshold_grid, min_sizes : tuple
        Candidates of the validation sweep (:func:`tune_thresholds`).
    hausdorff_max_side : int or None
        Pooling of the sweep's Hausdorff distances.
    random_state : int
        Seeds the sampling and the classifier.
    model_params : mapping
        Overrides of ``make_rf`` / ``make_lgbm`` defaults.
    """

    classifier: str = "rf"
    block_size: int = 33
    step: int = 4
    features: str = "filters"
    feature_params: Mapping[str, Any] = field(default_factory=dict)
    n_per_class: int = 200
    background_cap: int = 400
    border_fraction: float = 0.5
    body_background: bool = True
    max_train_blocks: int | None = None
    training: str = "blocks"
    max_train_slices: int | None = None
    interpolation: str = "linear"
    threshold_grid: tuple[float, ...] = tuple(float(t) for t in DEFAULT_GRID)
    min_sizes: tuple[int, ...] = (0, 64, 256)
    hausdorff_max_side: int | None = 128
    random_state: int = 0
    model_params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if not isinstance(self.block_size, int) or self.block_size < 1 or self.block_size % 2 == 0:
            raise ValueError(f"block_size must be a positive odd int, got {self.block_size!r}")
        if not isinstance(self.step, int) or self.step < 1:
            raise ValueError(f"step must be a positive int, got {self.step!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.max_train_blocks is not None and (
                isinstance(self.max_train_blocks, bool) or not isinstance(self.max_train_blocks, int)
                or self.max_train_blocks < 1):
            raise ValueError(f"max_train_blocks must be a positive int or None, "
                             f"got {self.max_train_blocks!r}")
        if self.max_train_slices is not None and (
                isinstance(self.max_train_slices, bool) or not isinstance(self.max_train_slices, int)
                or self.max_train_slices < 1):
            raise ValueError(f"max_train_slices must be a positive int or None, "
                             f"got {self.max_train_slices!r}")
        if self.training not in ("blocks", "dense"):
            raise ValueError(f"training must be 'blocks' or 'dense', got {self.training!r}")
        if self.training == "dense" and self.classifier != "cnn":
            raise ValueError(f"training='dense' needs classifier 'cnn', got {self.classifier!r}")
        if self.features not in ("filters", "raw"):
            raise ValueError(f"features must be 'filters' or 'raw', got {self.features!r}")
        if self.classifier == "cnn" and self.features != "raw":
            raise ValueError(f"classifier 'cnn' needs features='raw', got {self.features!r}")
        if self.classifier == "cnn" and "context" in dict(self.feature_params):
            want = dict(self.model_params).get("context_features", False)
            if dict(self.feature_params)["context"] != want:
                raise ValueError(
                    f"feature_params.context must agree with model_params.context_features "
                    f"({want!r}) for classifier 'cnn' (it follows that key; leave it out), "
                    f"got {dict(self.feature_params)['context']!r}")
        object.__setattr__(self, "threshold_grid", tuple(float(t) for t in self.threshold_grid))
        object.__setattr__(self, "min_sizes", tuple(int(s) for s in self.min_sizes))
        object.__setattr__(self, "feature_params", dict(self.feature_params))
        object.__setattr__(self, "model_params", dict(self.model_params))

    def to_dict(self) -> dict:
        """JSON-able dict; ``BlockTrackConfig(**d)`` rebuilds the config."""
        d = asdict(self)
        d["threshold_grid"] = list(self.threshold_grid)
        d["min_sizes"] = list(self.min_sizes)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockTrackConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown BlockTrackConfig key(s): {sorted(unknown)}")
        return cls(**data)

    def make_featurizer(self):
        """The featurizer this config names."""
        params = dict(self.feature_params)
        if self.classifier == "cnn" and self.model_params.get("context_features", False):
            params.setdefault("context", True)  # the CNN's X: pixels, then context columns
        return make_featurizer(self.features, block_size=self.block_size, **params)

    def make_model(self):
        """An unfitted classifier (``make_rf`` / ``make_lgbm`` / the block CNN) seeded with
        ``random_state``."""
        params = {"random_state": self.random_state, **self.model_params}
        if self.classifier == "cnn":
            from gitract.models.cnn import BlockCNNClassifier  # torch only when needed

            return BlockCNNClassifier(block_size=self.block_size, **params)
        return make_rf(**params) if self.classifier == "rf" else make_lgbm(**params)
