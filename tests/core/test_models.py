import pytest
import torch

from sweetspot.config import NetConfig
from sweetspot.core.models import (
    EXACT_NETWORKS,
    PAPER_NETWORKS,
    build_model,
    check_net,
    count_parameters,
    paper_table,
    training_flops_per_example,
)
from sweetspot.errors import ConfigError


def test_mlp_6x512_has_the_expected_shape_and_parameters():
    model = build_model(NetConfig(arch="mlp", options={"width": 512, "depth": 6}), (64,), 10)
    expected = (64 * 512 + 512) + 5 * (512 * 512 + 512) + (512 * 10 + 10)
    assert count_parameters(model) == expected
    assert model(torch.zeros(3, 64)).shape == (3, 10)


def test_mlp_small_is_one_hidden_layer_of_128_and_takes_mlp_options():
    model = build_model(NetConfig(arch="mlp-small"), (1, 28, 28), 10)
    assert count_parameters(model) == (784 * 128 + 128) + (128 * 10 + 10)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    check_net("teacher", NetConfig(arch="mlp-small", options={"width": 64}))
    assert (
        count_parameters(build_model(NetConfig(arch="mlp-small", options={"width": 64}), (4,), 3))
        == 4 * 64 + 64 + 64 * 3 + 3
    )


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


@pytest.mark.parametrize("row", paper_table(), ids=lambda r: r[0])
def test_paper_networks_are_within_five_percent_of_table_7(row):
    _, ours, paper = row
    assert abs(ours - paper) / paper < 0.05


@pytest.mark.parametrize(
    ("name", "shape"),
    [(n, (3, 32, 32) if "cifar10" in n else (1, 28, 28)) for n in PAPER_NETWORKS],
)
def test_paper_networks_map_their_datasets_images_to_ten_logits(name, shape):
    model = build_model(NetConfig(arch=name), shape, 10)
    model.eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 10)


def test_paper_table_layer_counts():
    # Table 7: MNIST large 3 conv / 3 dense / dropout; CIFAR-10 large 8 conv / 3 dense / dropout / BN
    def layers(name, shape):
        m = build_model(NetConfig(arch=name), shape, 10)
        kinds = [type(x).__name__ for x in m.modules()]
        return kinds.count("Conv2d"), kinds.count("Linear"), "Dropout" in kinds, "BatchNorm2d" in kinds

    assert layers("paper-mnist-large", (1, 28, 28)) == (3, 3, True, False)
    assert layers("paper-mnist-small", (1, 28, 28)) == (2, 1, False, False)
    assert layers("paper-fashion-mnist-large", (1, 28, 28)) == (4, 4, True, False)
    assert layers("paper-fashion-mnist-small", (1, 28, 28)) == (3, 1, False, False)
    assert layers("paper-cifar10-large", (3, 32, 32)) == (8, 3, True, True)
    assert layers("paper-cifar10-small", (3, 32, 32)) == (3, 1, False, False)
    assert layers("paper-cifar10-general", (3, 32, 32)) == (3, 1, False, False)


def test_convnet_options_are_checked():
    with pytest.raises(ConfigError, match="channels: must be a non-empty list"):
        check_net("teacher", NetConfig(arch="convnet", options={"channels": []}))
    with pytest.raises(ConfigError, match="architecture 'paper-mnist-large' takes: no options"):
        check_net("teacher", NetConfig(arch="paper-mnist-large", options={"dropout": 0.1}))
    with pytest.raises(ConfigError, match="pool has 1 entries, channels 2"):
        build_model(NetConfig(arch="convnet", options={"channels": [4, 8], "pool": [1]}), (1, 8, 8), 10)
    with pytest.raises(ConfigError, match="shrink"):
        build_model(NetConfig(arch="convnet", options={"channels": [4] * 4, "pool": [1] * 4}), (1, 8, 8), 10)


@pytest.mark.parametrize("name", EXACT_NETWORKS)
def test_the_keras_recipe_networks_match_table_7_exactly(name):
    _, ours, paper = next(row for row in paper_table() if row[0] == name)
    assert ours == paper == PAPER_NETWORKS[name][1]


def test_the_fashion_mnist_small_teacher_is_the_keras_example_stack():
    """Stride-2 3 x 3 convs, LeakyReLU(0.2) and a size-keeping 2 x 2 pool after the first, a LeakyReLU
    after the middle one (our choice: the example has two convs), nothing after the last but the Dense."""
    model = build_model(NetConfig(arch="paper-fashion-mnist-small"), (1, 28, 28), 10)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Conv2d", "LeakyReLU", "SamePool", "Conv2d", "LeakyReLU", "Conv2d", "Flatten", "Linear"]
    assert [m.stride for m in model if isinstance(m, torch.nn.Conv2d)] == [(2, 2)] * 3
    assert all(m.negative_slope == 0.2 for m in model if isinstance(m, torch.nn.LeakyReLU))
    assert model[-1].in_features == 4 * 4 * 512  # 28 -> 14 (the pool keeps 14) -> 7 -> 4, as Keras's "same"
    sizes = []
    hook = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for m in model[:6]]
    model(torch.zeros(1, 1, 28, 28))
    assert sizes == [14, 14, 14, 7, 7, 4] and hook


def test_the_same_pool_keeps_the_size_and_never_takes_its_padding():
    from sweetspot.core.models import SamePool

    x = -torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: a zero padding would win the max
    out = SamePool()(x)
    assert out.shape == x.shape
    assert out[0, 0].tolist() == [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0], [-7.0, -8.0, -9.0]]


def test_convnet_recipe_options_are_checked():
    for options, message in [
        ({"activation": "gelu"}, "convnet.activation: must be relu or leaky_relu"),
        ({"stride": 0}, "convnet.stride: must be an integer >= 1"),
        ({"pool_stride": 3}, "convnet.pool_stride: must be 1 (keep the size) or 2 (halve it)"),
        ({"last_activation": "no"}, "convnet.last_activation: must be true or false"),
        ({"negative_slope": 1.5}, "convnet.negative_slope: must be a number in [0, 1)"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            check_net("convnet", NetConfig(arch="convnet", options=options))


def test_forward_macs_counts_each_conv_and_dense_layer():
    from sweetspot.core.models import forward_macs

    model = build_model(NetConfig(arch="paper-fashion-mnist-small"), (1, 28, 28), 10)
    by_hand = 14 * 14 * 128 * 9 + 7 * 7 * 256 * 128 * 9 + 4 * 4 * 512 * 256 * 9 + 4 * 4 * 512 * 10
    assert forward_macs(model, (1, 28, 28)) == by_hand == 33_632_768
    mlp = build_model(NetConfig(arch="mlp", options={"width": 16, "depth": 2}), (8,), 3)
    assert forward_macs(mlp, (8,)) == 8 * 16 + 16 * 16 + 16 * 3
