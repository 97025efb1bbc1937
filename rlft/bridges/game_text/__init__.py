"""An LLM playing a game: text views of an env (``view``), recorded games -> text (``convert``), the ``game_text``
stage (``stage``), the game-playing LLM agent (``agent``) and the reward that plays a move in the real env
(``reward``)."""
