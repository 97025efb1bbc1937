"""Text views: how an env's observations and moves are written as text, so a language model can play the env.

An env plugin declares one in ``EnvPlugin.extras["text_view"]`` (``"module:Class"``, ``"file.py:Class"``, a class or
an instance); tic-tac-toe and Connect Four have built-in views (:mod:`rlft.envs.text_views`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rlft.core import plugins
from rlft.core.envs import EnvPlugin
from rlft.core.errors import PluginError

if TYPE_CHECKING:
    pass


@runtime_checkable
class TextView(Protocol):
    """How an env's observations and moves are written as text (see :mod:`rlft.envs.text_views`)."""

    def prompt(self, observation: Any, action_mask: Any = None) -> str:
        """The position for the seat to move, as the prompt a language model completes."""
        ...

    def move_text(self, action: int) -> str:
        """The completion that plays ``action``."""
        ...

    def parse_move(self, text: str) -> int | None:
        """The action a completion names, or None when it names none (unparsable)."""
        ...

    def observation(self, prompt: str) -> Any:
        """The observation back from a prompt written by :meth:`prompt` (ValueError for other text)."""
        ...

    def replay(self, observation: Any) -> list[int]:
        """Legal actions from the initial position that reach ``observation`` (to rebuild it in the real env)."""
        ...


def text_view(plugin: EnvPlugin) -> TextView:
    """The text view an env plugin declares in ``extras["text_view"]``; a PluginError says how to add one."""
    spec = plugin.extras.get("text_view")
    if spec is None:
        raise PluginError(
            f"The env '{plugin.name}' has no text view, so a language model cannot play it. Declare one in the "
            "plugin: EnvPlugin(..., extras={'text_view': 'my_pkg.views:MyView'}), a class with prompt(observation), "
            "move_text(action), parse_move(text), observation(prompt) and replay(observation) "
            "(see rlft/envs/text_views.py).")
    obj = plugins.import_object(spec, "text view") if isinstance(spec, str) else spec
    view = obj() if isinstance(obj, type) else obj
    missing = [m for m in ("prompt", "move_text", "parse_move") if not callable(getattr(view, m, None))]
    if missing:
        raise PluginError(f"The text view '{spec}' of env '{plugin.name}' lacks {missing}.")
    return view  # type: ignore[no-any-return]
