"""Saving, loading and pickling a fitted :class:`BlockCNNClassifier` (a mixin)."""

from __future__ import annotations

import inspect
import io
import os
from typing import TypeVar

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from gitract.models._device import select_device
from gitract.utils.io import atomic_path

_FORMAT = "gitract.BlockCNNClassifier/1"

_Model = TypeVar("_Model", bound="_PersistenceMixin")


class _PersistenceMixin:
    """Parameters + weights to a torch file and back, and a pickle of the weights' bytes.

    Needs ``get_params``, ``_make_net`` and the fitted attributes of
    :class:`BlockCNNClassifier`.
    """

    def _fitted_payload(self) -> dict:
        return {
            "classes": self.classes_.tolist(),
            "classes_dtype": str(self.classes_.dtype),
            "n_features_in": int(self.n_features_in_),
            "history": {k: [float(v) for v in vs] for k, vs in self.history_.items()},
            "best_epoch": int(self.best_epoch_),
            "n_epochs": int(self.n_epochs_),
            "n_steps": getattr(self, "n_steps_", None),
            "state_dict": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
        }

    def _restore_payload(self, payload: dict) -> None:
        self.classes_ = np.asarray(payload["classes"], dtype=payload["classes_dtype"])
        self.n_features_in_ = payload["n_features_in"]
        self.history_ = payload["history"]
        self.best_epoch_ = payload["best_epoch"]
        self.n_epochs_ = payload["n_epochs"]
        self.n_steps_ = payload.get("n_steps")
        try:
            self.device_ = select_device(self.device)
        except ValueError:
            self.device_ = torch.device("cpu")  # saved on a GPU machine, loaded without one
        net = self._make_net(len(self.classes_))
        net.load_state_dict(payload["state_dict"])
        self.net_ = net.to(self.device_).eval()

    def _params_payload(self) -> dict:
        params = self.get_params(deep=False)
        rs = params["random_state"]
        if isinstance(rs, np.random.Generator):
            params["random_state"] = None  # a Generator's state is not part of the model
        elif rs is not None:
            params["random_state"] = int(rs)
        params["channels"] = [int(c) for c in params["channels"]]
        return params

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters + weights to ``path`` (a torch file, written atomically)."""
        check_is_fitted(self, "net_")
        payload = {"format": _FORMAT, "params": self._params_payload(), **self._fitted_payload()}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls: type[_Model], path: str | os.PathLike, *, device: str | None = None) -> _Model:
        """Read a model written by :meth:`save` (``device`` overrides the saved one)."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved BlockCNNClassifier")
        params = dict(payload["params"])
        params["channels"] = tuple(params["channels"])
        if device is not None:
            params["device"] = device
        model = cls(**params)
        model._restore_payload(payload)
        return model

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_dense_cache", None)
        if "net_" in state:
            buf = io.BytesIO()
            torch.save(self._fitted_payload()["state_dict"], buf)
            state["net_"] = buf.getvalue()
            state["device_"] = str(self.device_)
        return state

    def __setstate__(self, state: dict) -> None:
        # A model pickled before a parameter existed gets that parameter's default (every
        # added parameter defaults to the earlier behaviour), so cached runs still load.
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if param.default is not inspect.Parameter.empty:
                state.setdefault(name, param.default)
        net_bytes = state.get("net_")
        self.__dict__.update(state)
        if isinstance(net_bytes, bytes):
            try:
                self.device_ = select_device(self.device)
            except ValueError:
                self.device_ = torch.device("cpu")
            sd = torch.load(io.BytesIO(net_bytes), map_location="cpu", weights_only=True)
            net = self._make_net(len(self.classes_))
            net.load_state_dict(sd)
            self.net_ = net.to(self.device_).eval()
