"""The device-state network: an encoder from what is known about a device to its embedding, and a decoder
from the embedding and a query's context to the logit of the device being on.

The **encoder** (:class:`DeviceEncoder`) turns a device's usage features, its name and
its room or groups (text vectors from :mod:`homeloop.home.text`) and its type into an
embedding. The **decoder** (:class:`StateDecoder`) reads the embedding with the query's
features (:mod:`homeloop.home.queries`), the device's own prior for the query's hour
and its transition rates. :class:`DeviceStateNetwork` joins the two, as
:class:`~homeloop.home.device_model.DeviceStateModel` trains it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from homeloop.data.schema import DEVICE_TYPES

__all__ = ["DeviceEncoder", "DeviceStateNetwork", "StateDecoder"]


class DeviceEncoder(nn.Module):
    """Usage, name, room and type of a device -> its embedding."""

    def __init__(self, *, usage_dim: int, text_dim: int, embedding_dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.usage = nn.Linear(usage_dim, hidden)
        self.name = nn.Linear(text_dim, hidden)
        self.room = nn.Linear(text_dim, hidden)
        self.device_type = nn.Embedding(len(DEVICE_TYPES), hidden)
        self.mix = nn.Sequential(
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, embedding_dim),
            nn.LayerNorm(embedding_dim),
        )

    def forward(self, usage: torch.Tensor, name: torch.Tensor, room: torch.Tensor, type_: torch.Tensor) -> torch.Tensor:
        return self.mix(self.usage(usage) + self.name(name) + self.room(room) + self.device_type(type_))


class StateDecoder(nn.Module):
    """Embedding + query context (+ the device's own prior for the query's hour) -> logit of being on."""

    def __init__(self, *, embedding_dim: int, query_dim: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(embedding_dim + query_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, 1),
        )  # fmt: skip

    def forward(self, embedding: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([embedding, query], dim=1)).squeeze(1)


class DeviceStateNetwork(nn.Module):
    """Encoder and decoder together: a batch of queries -> logits of the devices being on. ``sizes`` holds the
    constructor's arguments (what a saved model needs to build the network again)."""

    def __init__(self, *, usage_dim: int, text_dim: int, query_dim: int, embedding_dim: int, hidden: int) -> None:
        super().__init__()
        self.sizes = {
            "usage_dim": usage_dim,
            "text_dim": text_dim,
            "query_dim": query_dim,
            "embedding_dim": embedding_dim,
            "hidden": hidden,
        }
        self.encoder = DeviceEncoder(usage_dim=usage_dim, text_dim=text_dim, embedding_dim=embedding_dim, hidden=hidden)
        self.decoder = StateDecoder(embedding_dim=embedding_dim, query_dim=query_dim + 4)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        emb = self.encoder(batch["usage"], batch["name"], batch["room"], batch["type"])
        prior = torch.stack(
            [
                batch["usage"].gather(1, batch["hod"][:, None])[:, 0],
                batch["usage"].gather(1, 24 + batch["how"][:, None])[:, 0],
            ],
            dim=1,
        )
        context = [batch["query"], torch.sqrt(prior), torch.sqrt(batch["persist"])]
        return self.decoder(emb, torch.cat(context, dim=1))
