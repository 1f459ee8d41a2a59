"""cnnrecon.ops: forward operators (degradations) applied to clean images."""

from cnnrecon.ops.degrade import make_degradation, validate_degradation

__all__ = ['make_degradation', 'validate_degradation']
