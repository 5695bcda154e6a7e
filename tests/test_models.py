import pytest
import torch

from sweetspot.config import NetConfig
from sweetspot.errors import ConfigError
from sweetspot.models import build_model, check_net, count_parameters, training_flops_per_example


def test_mlp_6x512_has_the_expected_shape_and_parameters():
    model = build_model(NetConfig(arch="mlp", options={"width": 512, "depth": 6}), (64,), 10)
    expected = (64 * 512 + 512) + 5 * (512 * 512 + 512) + (512 * 10 + 10)
    assert count_parameters(model) == expected
    assert model(torch.zeros(3, 64)).shape == (3, 10)


def test_linear_student_is_one_layer():
    model = build_model(NetConfig(arch="linear"), (8, 8), 10)
    assert count_parameters(model) == 64 * 10 + 10
    assert model(torch.zeros(2, 8, 8)).shape == (2, 10)


def test_mlp_dropout_is_added_only_when_asked():
    with_dropout = build_model(NetConfig(options={"depth": 2, "width": 4, "dropout": 0.5}), (3,), 2)
    without = build_model(NetConfig(options={"depth": 2, "width": 4}), (3,), 2)
    assert sum(isinstance(m, torch.nn.Dropout) for m in with_dropout.modules()) == 2
    assert not any(isinstance(m, torch.nn.Dropout) for m in without.modules())


def test_training_flops_count_three_passes_except_the_first_layers_input_gradient():
    model = build_model(NetConfig(options={"width": 4, "depth": 1}), (2,), 3)
    # layers 2x4 and 4x3: forward 2*(8+12), weight grads 2*(8+12), input grads 2*12
    assert training_flops_per_example(model) == 2 * 20 + 2 * 20 + 2 * 12


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (NetConfig(arch="mpl"), "teacher.arch: unknown architecture 'mpl' (did you mean 'mlp'?)"),
        (NetConfig(options={"widht": 3}), "unknown key 'widht' (did you mean 'width'?)"),
        (NetConfig(options={"optimiser": "adam"}), "did you mean 'optimizer'?"),
        (NetConfig(options={"width": 0}), "teacher.width: must be an integer >= 1"),
        (NetConfig(options={"dropout": 1.0}), "teacher.dropout: must be a number in [0, 1)"),
        (NetConfig(arch="linear", options={"width": 3}), "architecture 'linear' takes: no options"),
    ],
)
def test_check_net_rejects_unknown_names_and_bad_options(net, message):
    with pytest.raises(ConfigError) as info:
        check_net("teacher", net)
    assert message in str(info.value)
