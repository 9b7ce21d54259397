"""Models trained elsewhere: torchvision, timm or Hugging Face backbones with weights from any
common checkpoint.

``dimcollapse spectrum``, ``embed`` and ``probe`` accept ``--model torchvision:resnet50`` (any
torchvision classification model) or ``--model timm:NAME`` (with the ``dimcollapse[timm]``
extra) and ``--weights FILE``, or ``--model hf:DIR``, a folder written by ``transformers``'
``save_pretrained`` (with the ``dimcollapse[hf]`` extra; no ``--weights``).
:func:`load_foreign_model` builds the architecture *without* pretrained weights (nothing is
downloaded), loads the file's tensors into it and wraps it as a :class:`ForeignModel`, whose
``encode(x)`` is what :func:`dimcollapse.probe.extract_features` calls for a dimcollapse model:
so the spectrum (Eq. 1), RankMe and the probes read foreign models through the same code as our
own.

Documented choices:

* **Weights files** (:mod:`~dimcollapse.foreign.weights`): ``.safetensors``;
  ``.pt``/``.pth``/``.ckpt`` loaded with ``torch.load(weights_only=True)``, the plain data
  checkpoints keep beside their tensors allowed (``argparse.Namespace``, ``pathlib`` paths,
  OmegaConf configs in Lightning's ``hyper_parameters``); a file that needs unpickling of any
  other object is refused, never executed, in one line that keeps torch's detail. Every dictionary of tensors inside the file is searched, however nested
  (``state_dict``, ``model``, ``state_dict_ema``, ``teacher``, ``student``, ...).
* **Key prefixes and structure** (:mod:`~dimcollapse.foreign.matching`): prefixes
  (``backbone.``, ``module.encoder_q.``, any other) are found by vote; at least
  :data:`MIN_MATCH` of the backbone's tensors must be found with the right shape. When no
  prefix maps the names (lightly's ``nn.Sequential`` of a ResNet's children: ``backbone.0.*``),
  the tensors are matched by order, shape and kind, and a ``note:`` says so. ``--prefix`` sets
  the prefix (relative to the dictionary that holds the tensors). Tensors found neither way are
  reported as a ``note:`` line: never a silent load with random weights.
* **Twins**: when two encoders fit (MoCo's query and key, MoCo v3's base and momentum, DINO's
  teacher and student, timm's weights and their EMA, solo-learn's backbone and momentum
  backbone, lightly's MoCo ``backbone`` and ``backbone_momentum`` and DINO ``student_backbone``
  and ``teacher_backbone``) the one the method evaluates is loaded (teacher, query, base, EMA,
  online) and a ``note:`` says which; ``--select WORD`` (a word of its name, or query/key/base/momentum/ema)
  chooses another. Anything still ambiguous is refused in one line naming ``--prefix``.
* **Representation**: the penultimate feature. torchvision: the *last* ``nn.Linear`` of the
  model (the classifier: ``fc`` of ResNet/RegNet/Inception, the last layer of ``classifier``
  for VGG/AlexNet/EfficientNet/MobileNet/ConvNeXt/DenseNet, ``heads.head`` of ViT, ``head``
  of Swin) is replaced by ``Identity``, so r is its input (512-d for ResNet-18, 2048-d for
  ResNet-50, 4096-d for VGG). Models without a final ``Linear`` (SqueezeNet) need ``--layer``.
  timm: ``reset_classifier(0)``. Hugging Face (:mod:`~dimcollapse.foreign.hf`): the pooled
  output where the model has one, else the CLS token, else the mean of the tokens (a note says
  which); ``--pool pooler|cls|mean`` chooses, refused where the model cannot give it. ``--layer NAME`` instead reads any named module's output, global-average-pooled when
  it is spatial (N, C, H, W), token-averaged when it is (N, T, C).
* **A CIFAR-stem ResNet** (solo-learn and most small-image SSL code: a 3x3 stride-1 ``conv1``
  and no max-pool) is recognised from the file's ``conv1.weight`` shape (or, when names were
  matched by structure, from its first convolution), and the torchvision ResNet's stem is
  rebuilt to match. The weights cannot show the conv's padding, which changes the features:
  2 for a solo-learn layout (its online ``classifier`` beside ``backbone.``; solo-learn builds
  ``Conv2d(3, 64, 3, stride=1, padding=2)``), else 1, the common choice; a ``note:`` says which
  and why, and ``--stem-padding N`` (``stem_padding=``) sets it.
* **Input**: the dataset's images (from :func:`dimcollapse.probe.extract_features`'s eval
  loader, normalised with the dataset's statistics) are brought back to the 0..1 scale, grey
  images repeated to three channels when the model has three, resized (bilinear, antialiased)
  to the model's input size, and normalised with the model's own statistics: torchvision's
  default-weights metadata (224 px, ImageNet mean/std; 299 for Inception), timm's
  ``pretrained_cfg``, a Hugging Face folder's ``preprocessor_config.json`` (else its config's
  ``image_size`` and ImageNet statistics); ``--image-size`` overrides the size (e.g. 32 for a
  CIFAR model).
"""

from dimcollapse.foreign.architectures import (
    FAMILIES,
    build_architecture,
    parse_model_spec,
    strip_classifier,
)
from dimcollapse.foreign.matching import (
    MIN_MATCH,
    TWINS,
    Found,
    choose_encoder,
    find_prefix,
    locate_weights,
)
from dimcollapse.foreign.model import ForeignModel, load_foreign_model
from dimcollapse.foreign.weights import read_tensor_groups, read_weights

__all__ = [
    "FAMILIES",
    "MIN_MATCH",
    "TWINS",
    "ForeignModel",
    "Found",
    "build_architecture",
    "choose_encoder",
    "find_prefix",
    "load_foreign_model",
    "locate_weights",
    "parse_model_spec",
    "read_tensor_groups",
    "read_weights",
    "strip_classifier",
]
