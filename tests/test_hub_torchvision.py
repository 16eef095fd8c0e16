"""The published MobileNetV3 networks read torchvision's state dicts (issue 18, item 8).

torchvision's models are built with random weights (``weights=None``): nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import hub
from hub.mobilenetv3 import load_torchvision_state_dict

TORCHVISION = {"mobilenetv3-large-100": torchvision.models.mobilenet_v3_large,
               "mobilenetv3-small-100": torchvision.models.mobilenet_v3_small}


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_state_dict_loads_and_gives_torchvisions_outputs(name):
    reference = TORCHVISION[name](weights=None)
    with torch.no_grad():  # running statistics that are not the defaults, so that a mix-up shows
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    net = hub.load_searched_model(name)
    assert load_torchvision_state_dict(net, reference.state_dict()) is net
    net.eval(), reference.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), atol=1e-5, rtol=1e-5)
    for key, value in net.state_dict().items():  # every tensor came from torchvision's
        assert not value.is_floating_point() or any(value is v or torch.equal(value, v)
                                                    for v in reference.state_dict().values()), key


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_published_mobilenetv3_batchnorm_matches_torchvisions(name):
    # torchvision builds MobileNetV3 with BatchNorm2d(eps=0.001, momentum=0.01): fine-tuning behaves the same
    ours = [(m.eps, m.momentum) for m in hub.load_searched_model(name).modules() if isinstance(m, torch.nn.BatchNorm2d)]
    theirs = [(m.eps, m.momentum) for m in TORCHVISION[name](weights=None).modules()
              if isinstance(m, torch.nn.BatchNorm2d)]
    assert ours == theirs


def test_torchvision_state_dict_of_another_network_is_refused():
    net = hub.load_searched_model("mobilenetv3-large-100")
    small = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    with pytest.raises(ValueError, match="torchvision state dict does not match"):
        load_torchvision_state_dict(net, small)
    not_mobilenet = {"conv1.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="'conv1.weight'"):
        load_torchvision_state_dict(net, not_mobilenet)
