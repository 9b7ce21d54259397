"""dimcollapse: see, understand and avoid dimensional collapse in contrastive self-supervised learning.

Implements and extends Jing, Vincent, LeCun, Tian, "Understanding Dimensional Collapse in
Contrastive Self-Supervised Learning" (ICLR 2022).
"""

__version__ = "0.1.0"
