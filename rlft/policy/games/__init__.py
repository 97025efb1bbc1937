"""Two-player games: the play loop and recording (``play``), the learner's seat for self-play (``selfplay``), the
opponent pool and its persistence (``pool``), matches / Elo / arena (``arena``) and the game env hooks (``hooks``)."""
