"""AutoSpecNet: MobileNetV2 with year, make and body-type heads feeding a 196-class head.

As in the paper's code: the backbone's pooled 1280 features go to three heads
(Dropout 0.2 + Linear); the class head reads the features concatenated with the
three heads' logits (Dropout, ReLU, Linear).

The model is a ``PyTorchModelHubMixin``: ``save_pretrained`` writes
``model.safetensors``, ``config.json`` (class names, vocabularies, input size,
normalisation) and a model card; ``from_pretrained`` reads them back from a folder
or a Hub repo. Only safetensors weights are ever read.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torchvision.models import mobilenet_v2

from autospecnet.heads import ATTRIBUTE_HEADS, FEATURE_DIM, HEADS
from autospecnet.labels import LabelError, Taxonomy
from autospecnet.preprocess import IMAGENET_MEAN, IMAGENET_STD

PAPER_DROPOUT = 0.2  # before each head


def _attribute_head(out_features: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, out_features))


MODEL_TAGS = ["stanford-cars", "mobilenet_v2", "multi-task", "car-recognition"]


class AutoSpecNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="autospecnet",
    license="mit",
    pipeline_tag="image-classification",
    tags=MODEL_TAGS,
):
    def __init__(
        self,
        class_names: list[str],
        years: list[str],
        makes: list[str],
        body_types: list[str],
        image_size: int = 224,
        mean: list[float] = list(IMAGENET_MEAN),  # noqa: B006 - read only; the mixin records defaults
        std: list[float] = list(IMAGENET_STD),  # noqa: B006
        dropout: float = PAPER_DROPOUT,
        temperatures: dict[str, float] | None = None,
        marginal_weights: dict[str, float] | None = None,
        sure: dict | None = None,
        flip_average: bool = False,
    ):
        super().__init__()
        taxonomy = Taxonomy.from_class_names(class_names)
        try:
            taxonomy.check_vocabularies(years, makes, body_types)
        except LabelError as error:
            raise LabelError(f"the config's {error}") from None
        self.taxonomy = taxonomy
        self.image_size = int(image_size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        # Softmax temperature per head, fitted on validation data by training.calibrate (1.0: uncalibrated).
        self.temperatures = {head: float((temperatures or {}).get(head, 1.0)) for head in HEADS}
        # How much each attribute head listens to the 196-class head (0: its own logits alone, as in the
        # paper; 1: the class head's probabilities summed per attribute), also fitted by training.calibrate.
        self.marginal_weights = {head: float((marginal_weights or {}).get(head, 0.0)) for head in ATTRIBUTE_HEADS}
        # When each head's answer is sure (autospecnet.sure), also fitted by training.calibrate; None: never.
        self.sure = sure
        # Outside training, average each head's logits over the image and its mirror (test-time augmentation),
        # when training.calibrate found that it pays on validation.
        self.flip_average = bool(flip_average)

        self.backbone = mobilenet_v2().features
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.year_head = _attribute_head(len(years), dropout)
        self.make_head = _attribute_head(len(makes), dropout)
        self.type_head = _attribute_head(len(body_types), dropout)
        self.model_head = nn.Sequential(
            nn.Dropout(dropout),
            nn.ReLU(),
            nn.Linear(FEATURE_DIM + len(years) + len(makes) + len(body_types), len(class_names)),
        )
        # The attribute heads' targets for each of the classes, as a buffer so it moves with .to(device).
        targets = taxonomy.head_targets()
        self.register_buffer(
            "class_to_heads",
            torch.tensor([targets["year"], targets["make"], targets["type"]], dtype=torch.long).T,
            persistent=False,
        )

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy, image_size: int = 224, dropout: float = PAPER_DROPOUT) -> AutoSpecNet:
        return cls(
            class_names=list(taxonomy.class_names),
            years=list(taxonomy.years),
            makes=list(taxonomy.makes),
            body_types=list(taxonomy.body_types),
            image_size=image_size,
            dropout=dropout,
        )

    def with_calibration(
        self,
        temperatures: dict[str, float],
        marginal_weights: dict[str, float],
        sure: dict | None = None,
        flip_average: bool = False,
    ) -> AutoSpecNet:
        """The same weights with other temperatures, marginal weights, "sure" rule (None: none) and test-time flip,
        recorded in config.json when saved."""
        config = {
            **self._hub_mixin_config,
            "temperatures": dict(temperatures),
            "marginal_weights": dict(marginal_weights),
            "sure": sure,
            "flip_average": flip_average,
        }
        model = type(self)(**config)
        model.load_state_dict(self.state_dict())
        return model.train(self.training)

    def log_probabilities(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each head's log-probabilities: its logits at its temperature, and for year, make and body type
        a geometric mix with the class head's probabilities summed over the classes of each label."""
        result = {"model": (logits["model"].float() / self.temperatures["model"]).log_softmax(dim=1)}
        class_probs = result["model"].exp()
        marginals = self.marginals(class_probs)
        for head in ATTRIBUTE_HEADS:
            own = (logits[head].float() / self.temperatures[head]).log_softmax(dim=1)
            weight = self.marginal_weights[head]
            if weight > 0:
                own = ((1 - weight) * own + weight * marginals[head].clamp_min(1e-12).log()).log_softmax(dim=1)
            result[head] = own
        return result

    def marginals(self, class_probs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each attribute head's label probabilities implied by class probabilities (N x classes): the sum over
        each label's classes."""
        result = {}
        for column, head in enumerate(ATTRIBUTE_HEADS):
            membership = nn.functional.one_hot(self.class_to_heads[:, column], len(self.vocabularies[head]))
            result[head] = class_probs @ membership.to(class_probs.dtype)
        return result

    @property
    def vocabularies(self) -> dict[str, tuple[str, ...]]:
        """Each head's labels, in the order of its logits."""
        return self.taxonomy.vocabularies

    def head_targets(self, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's targets for a batch of class indices: the class itself, and its year, make and body type;
        for a batch of class probabilities (N x classes, as CutMix and MixUp make them), each head's probabilities."""
        if targets.ndim == 2:
            return {"model": targets, **self.marginals(targets)}
        columns = self.class_to_heads[targets]
        return {"model": targets, **{head: columns[:, i] for i, head in enumerate(ATTRIBUTE_HEADS)}}

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("backbone.")]

    def heads_of(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's logits for a batch of pooled backbone features (N x FEATURE_DIM)."""
        year = self.year_head(features)
        make = self.make_head(features)
        body_type = self.type_head(features)
        model = self.model_head(torch.cat([features, year, make, body_type], dim=1))
        return {"model": model, "year": year, "make": make, "type": body_type}

    def look(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """(each head's logits, the pooled features, the feature maps) of a batch. With ``flip_average`` outside
        training: logits and features averaged over the image and its mirror, and both feature maps, the
        mirror's flipped back so that its cells lie where the image's do."""
        feature_map = self.backbone(images)
        features = self.pool(feature_map)
        logits = self.heads_of(features)
        if not self.flip_average or self.training:
            return logits, features, [feature_map]
        mirrored_map = self.backbone(images.flip(3))
        mirrored = self.pool(mirrored_map)
        mirrored_logits = self.heads_of(mirrored)
        averaged = {head: (logits[head] + mirrored_logits[head]) / 2 for head in logits}
        return averaged, (features + mirrored) / 2, [feature_map, mirrored_map.flip(3)]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.look(images)[0]

    def fused_for_inference(self) -> AutoSpecNet:
        """A copy in eval mode with every BatchNorm folded into the convolution before it: same outputs
        (to float rounding), about a fifth less time per image on a CPU. Not for training."""
        fused = copy.deepcopy(self).eval()
        for module in fused.backbone.modules():
            if isinstance(module, nn.Sequential):
                children = list(module)
                for i in range(len(children) - 1):
                    conv, norm = children[i], children[i + 1]
                    if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                        module[i] = fuse_conv_bn_eval(conv, norm)
                        module[i + 1] = nn.Identity()
        return fused

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ) -> AutoSpecNet:
        """Read ``model.safetensors`` only: unlike the mixin's default, never fall back to a pickle."""
        if os.path.isdir(model_id):
            weights_file = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        else:
            weights_file = hf_hub_download(
                repo_id=model_id,
                filename=constants.SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        model = cls(**model_kwargs)
        model.load_state_dict(load_file(weights_file, device=map_location), strict=strict)
        return model.eval()
