"""Bad input gets one clear error that names the bad value and what is allowed."""

from __future__ import annotations

import pytest

import supernet
import supernet.nn as nn
from tests.test_primitives import CellSpace, ValueChoiceSpace


def test_layer_choice_candidates_must_be_a_list():
    with pytest.raises(TypeError, match="candidates must be a list or an OrderedDict of modules, got ReLU"):
        nn.LayerChoice(nn.ReLU())


def test_layer_choice_candidates_must_not_be_empty():
    with pytest.raises(ValueError, match="'empty': candidates must not be empty"):
        nn.LayerChoice([], label="empty")


def test_value_choice_candidates_must_be_a_non_empty_list():
    with pytest.raises(TypeError, match="candidates must be a list, got int"):
        nn.ValueChoice(3)
    with pytest.raises(ValueError, match="must not be empty"):
        nn.ValueChoice([])


def test_n_chosen_cannot_exceed_n_candidates():
    with pytest.raises(ValueError, match=r"n_chosen must be None or an int in 1..2 \(n_candidates\), got 3"):
        nn.InputChoice(2, 3)


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be one of .* got 'max'"):
        nn.InputChoice(2, 1, "max")


def test_repeat_depth_range_needs_min_at_most_max():
    with pytest.raises(ValueError, match=r"needs min <= max, got \(3, 1\)"):
        nn.Repeat(nn.ReLU(), (3, 1))


def test_bad_merge_op():
    with pytest.raises(ValueError, match="merge_op must be one of \\['all', 'loose_end'\\], got 'concat'"):
        nn.Cell([nn.Identity()], 2, merge_op="concat")


def test_prior_must_match_candidates():
    with pytest.raises(ValueError, match="prior has 1 entries but there are 2 candidates"):
        nn.LayerChoice([nn.ReLU(), nn.Tanh()], prior=[1.0])


def test_same_label_with_different_candidates_is_an_error_naming_the_label():
    net = nn.Sequential(nn.Linear(3, nn.ValueChoice([2, 4], label="h")),
                        nn.Linear(nn.ValueChoice([2, 8], label="h"), 1))
    with pytest.raises(ValueError, match="label 'h' names different decisions"):
        supernet.search_space(net)


def test_missing_label_names_it_and_lists_allowed_values():
    with pytest.raises(ValueError, match=r"no value for 'width'; allowed: \[8, 16, 24\]"):
        supernet.freeze(ValueChoiceSpace(), {"ks": 3, "drop": 0.0, "heads": 1})


def test_unknown_label_is_named():
    arch = {"width": 8, "ks": 3, "drop": 0.0, "heads": 1, "depth": 3}
    with pytest.raises(ValueError, match="unknown label 'depth'.*'width', 'ks', 'drop', 'heads'"):
        supernet.freeze(ValueChoiceSpace(), arch)


def test_invalid_value_is_named_with_allowed_values():
    with pytest.raises(ValueError, match=r"invalid value 12 for 'width'; allowed: \[8, 16, 24\]"):
        supernet.freeze(ValueChoiceSpace(), {"width": 12, "ks": 3, "drop": 0.0, "heads": 1})


def test_invalid_cell_input_is_named():
    arch = supernet.sample(CellSpace(), seed=0)
    arch["cell/input_2_0"] = [5]
    with pytest.raises(ValueError, match=r"invalid value \[5\] for 'cell/input_2_0'; allowed: \[\[0\], \[1\]\]"):
        supernet.freeze(CellSpace(), arch)


def test_arch_must_be_a_dict():
    with pytest.raises(TypeError, match="an architecture is a dict"):
        supernet.freeze(ValueChoiceSpace(), [8, 3])


def test_subclassing_a_basic_unit_explains_what_to_do():
    with pytest.raises(TypeError, match="subclass torch.nn.modules.conv.Conv2d instead"):
        class MyConv(nn.Conv2d):
            pass
