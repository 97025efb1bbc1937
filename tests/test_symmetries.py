"""Symmetries of a game (Connect Four's mirror image) and ``imitate.augment``: the image of a game is a game of the
same rules, the minibatch transform moves every per-action array with the board, and imitation with it learns the
mirror image of what it was shown."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlft.core.errors import ConfigError
from rlft.envs.game_state import ConnectFourState
from rlft.policies.networks import PolicySpec, action_logits, build_policy, masked_logits
from rlft.policy.config import ImitateConfig
from rlft.policy.datasets import Transitions
from rlft.policy.hooks import env_hooks
from rlft.policy.stages.imitate import _tensors, behaviour_clone, game_symmetries

(MIRROR,) = ConnectFourState.symmetries()


def _image(state: ConnectFourState) -> ConnectFourState:
    return ConnectFourState.from_observation(MIRROR.observations(state.observation()[None])[0])


def test_connect_four_mirror_commutes_with_the_rules() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        state = ConnectFourState.initial()
        while state.terminal_value() is None:
            image = _image(state)
            assert (image.legal_mask()[MIRROR.actions] == state.legal_mask()).all()
            a = int(rng.choice(np.flatnonzero(state.legal_mask())))
            after, image_after = state.play(a), image.play(int(MIRROR.actions[a]))
            np.testing.assert_array_equal(_image(after).observation(), image_after.observation())
            assert after.terminal_value() == image_after.terminal_value()
            state = after


def _games(n: int, seed: int = 0) -> Transitions:
    """Random Connect Four positions, each labelled with the leftmost legal column (hard and soft targets)."""
    rng = np.random.default_rng(seed)
    obs, masks, actions, episode = [], [], [], []
    for e in range(n):
        state = ConnectFourState.initial()
        while state.terminal_value() is None:
            legal = state.legal_mask()
            obs.append(state.observation())
            masks.append(legal)
            actions.append(int(np.flatnonzero(legal)[0]))
            episode.append(e)
            state = state.play(int(rng.choice(np.flatnonzero(legal))))
    obs_space, act_space, _ = env_hooks("connect_four", {}).learner_spaces()
    k = len(actions)
    soft = np.eye(7, dtype=np.float32)[actions]
    return Transitions(np.stack(obs), np.array(actions), np.stack(masks), np.zeros(k, np.float32), np.array(episode),
                       np.zeros(k, bool), np.zeros(k, bool), np.zeros((n, 6, 7, 2), np.int8), obs_space, act_space,
                       action_targets=soft)


def test_minibatch_transform_moves_board_move_mask_and_targets_together() -> None:
    data = _games(3)
    idx = np.arange(len(data))
    draw = np.arange(len(data)) % 2  # every other sample mirrored
    obs, targets, masks = (t.numpy() for t in _tensors(data, idx, torch.device("cpu"), [MIRROR], draw))
    kept, flipped = draw == 0, draw == 1
    np.testing.assert_array_equal(obs[kept], data.observations[kept])
    np.testing.assert_array_equal(obs[flipped], data.observations[flipped][:, :, ::-1])
    np.testing.assert_array_equal(targets[flipped], data.action_targets[flipped][:, ::-1])  # type: ignore[index]
    np.testing.assert_array_equal(masks[flipped], data.action_masks[flipped][:, ::-1])  # type: ignore[index]
    data.action_targets = None  # hard targets: the action index is mapped
    _, hard, _ = _tensors(data, idx, torch.device("cpu"), [MIRROR], draw)
    np.testing.assert_array_equal(hard.numpy()[flipped], 6 - data.actions[flipped])
    np.testing.assert_array_equal(hard.numpy()[kept], data.actions[kept])
    # the source arrays are untouched
    np.testing.assert_array_equal(data.actions, _games(3).actions)


@pytest.mark.parametrize("augment", [False, True])
def test_imitation_with_the_mirror_learns_both_images(augment: bool) -> None:
    """Shown only "play the leftmost legal column", the augmented policy also plays the rightmost (its image) on the
    empty board, about as often; without augmentation it never does."""
    torch.manual_seed(0)
    data = _games(60)
    policy = build_policy(PolicySpec(net_arch=[64]), data.observation_space, data.action_space, masked=True)
    cfg = ImitateConfig(epochs=15, critic_warmup_epochs=0, batch_size=64, lr=3e-3, holdout_fraction=0.0)
    behaviour_clone(policy, data, cfg, seed=0, symmetries=[MIRROR] if augment else None)
    empty = torch.as_tensor(ConnectFourState.initial().observation()[None])
    with torch.no_grad():
        probs = torch.softmax(masked_logits(action_logits(policy, empty), np.ones((1, 7), bool)), -1)[0].numpy()
    if augment:
        assert probs[0] > 0.3 and probs[6] > 0.3, probs
    else:
        assert probs[0] > 0.9 and probs[6] < 0.05, probs


def test_augment_needs_an_env_with_symmetries() -> None:
    assert len(game_symmetries("connect_four", "imitate")) == 1
    for env in ("tictactoe", "cartpole"):
        with pytest.raises(ConfigError, match="offers no symmetries"):
            game_symmetries(env, "imitate")
