"""One helper for every "component by name" lookup, with one error style.

Models, tasks, losses, optimizers, schedules and parallel strategies are all
chosen by a name in the config. Each kind has a `Registry`; a component
registers itself where it is defined (`@MODELS.register('dncnn')`), and the
code that needs one asks `MODELS.get(config.model.name)`. Options that belong
to one component only live in a sub-dict named after it
(`config.model.dncnn.space_to_depth`, `config.task.gaussian.sigma`) and are
passed to it as keyword arguments by `build`, so an option given to the wrong
component is a one-line error instead of being silently ignored.
"""

import inspect
from typing import Any, Callable, Generic, Mapping, TypeVar

from cnnrecon.errors import CnnreconError

T = TypeVar('T')


class Registry(Generic[T]):
  """Components of one kind by name.

  Attributes:
    config_key: the dotted config key that names the component, e.g.
      'model.name'; used in error messages.
  """

  def __init__(self, config_key: str):
    self.config_key = config_key
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator that registers a component under `name` (names are unique)."""
    def add(entry: T) -> T:
      if name in self._entries:
        raise ValueError(f'{self.config_key}: {name!r} is registered twice')
      self._entries[name] = entry
      return entry
    return add

  def names(self) -> list[str]:
    """The registered names, in registration order."""
    return list(self._entries)

  def __contains__(self, name: object) -> bool:
    return name in self._entries

  def get(self, name: Any) -> T:
    """The component registered as `name`.

    Raises:
      CnnreconError: `name` is unknown; the message lists the known names.
    """
    if name not in self._entries:
      raise CnnreconError(f'unknown {self.config_key}={name!r}; known: {", ".join(self._entries)}. '
                          f'Set --config.{self.config_key} to one of them.')
    return self._entries[name]

  def build(self, name: Any, options: Mapping[str, Any] | None = None, **shared: Any) -> Any:
    """Calls the component `name` with its own `options` plus `shared` keyword arguments.

    Args:
      name: the registered name.
      options: the component's config sub-dict (e.g. `config.task.gaussian`),
        or None when it has no options.
      **shared: arguments every component of this kind takes.

    Raises:
      CnnreconError: unknown name, or an option the component does not take.
    """
    section = self.config_key.rsplit('.', 1)[0]
    return call_with_options(self.get(name), options, section=f'{section}.{name}', **shared)


def call_with_options(factory: Callable[..., T], options: Mapping[str, Any] | None, *, section: str,
                      **shared: Any) -> T:
  """Calls `factory(**options, **shared)`, refusing in one line an option it does not take.

  Args:
    factory: a function or class whose keyword parameters are its options.
    options: the config sub-dict of options (e.g. `config.task.gaussian`), or None.
    section: the sub-dict's dotted name, for the message (e.g. 'task.gaussian').
    **shared: arguments that are not options (e.g. the loss).

  Raises:
    CnnreconError: an option `factory` does not take.
  """
  options = dict(options or {})
  accepted = inspect.signature(factory).parameters
  takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
  unknown = [key for key in options if key not in accepted and not takes_any]
  if unknown:
    kind, _, name = section.rpartition('.')
    own = [key for key in accepted if key not in shared]
    raise CnnreconError(f'{section}.{unknown[0]} is not an option of {kind} {name!r} '
                        f'(its options: {", ".join(own) or "none"}); remove it from the config')
  return factory(**options, **shared)
