import pytest

import ppzoo
from ppzoo.registry import resolve_name

from conftest import REFERENCE


def test_registry_and_reference_table_hold_the_same_names():
    assert sorted(REFERENCE) == ppzoo.list_models()


def test_required_names_are_registered():
    expected = {"alexnet", "alexnet_single"}
    expected |= {f"mobilenet_v1_x{w}" for w in ("1_0", "0_75", "0_5", "0_25")}
    expected |= {f"mobilenet_v2_x{w}" for w in ("1_4", "1_0", "0_75", "0_5", "0_35")}
    expected |= {f"shufflenet_v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_25", "0_5", "1_0", "1_5", "2_0")}
    expected |= {"squeezenet1_0", "squeezenet1_1", "resnet18", "resnet34", "resnet50", "se_resnet50",
                 "se_mobilenet_v1_x1_0", "se_shufflenet_v1_g3_x2_0", "se_mobilenet_v2_x1_0", "mobilenet_v1_full_conv_x1_0"}
    expected |= {f"dy_mobilenet_v2_x{w}" for w in ("1_0", "0_75", "0_5", "0_35")}
    assert set(ppzoo.list_models()) == expected


def test_list_models_filters_with_wildcards():
    assert ppzoo.list_models("mobilenet_v1_x*") == [
        "mobilenet_v1_x0_25", "mobilenet_v1_x0_5", "mobilenet_v1_x0_75", "mobilenet_v1_x1_0"]
    assert ppzoo.list_models("*resnet*", exclude="se_*") == ["resnet18", "resnet34", "resnet50"]
    assert len(ppzoo.list_models("shufflenet_v1_g3_*")) == 5
    assert ppzoo.list_models("nothing*") == []


def test_model_info_carries_published_facts():
    info = ppzoo.model_info("mobilenet_v1_x1_0")
    assert (info.family, info.paper, info.input_size) == ("mobilenet_v1", "1704.04861", (3, 224, 224))
    assert (info.params, info.madds, info.top1) == (4.24, 569, 70.6)
    assert info.paper_url == "https://arxiv.org/abs/1704.04861"
    assert ppzoo.model_info("alexnet").input_size == (3, 227, 227)
    assert ppzoo.model_info("shufflenet_v1_g2_x0_25").madds is None  # nothing published


@pytest.mark.parametrize("name", sorted(n for n, ref in REFERENCE.items() if ref))
def test_model_info_matches_reference_table(name):
    info, ref = ppzoo.model_info(name), REFERENCE[name]
    assert (info.params, info.madds) == (ref.get("params"), ref["madds"])
    assert list(info.input_size) == ref.get("input_size", [3, 224, 224])


def test_unknown_name_lists_closest_names():
    with pytest.raises(ValueError, match=r"unknown model 'mobilenet_v1_x1'.*mobilenet_v1_x1_0"):
        ppzoo.create_model("mobilenet_v1_x1")
    with pytest.raises(ValueError, match="shufflenet_v1_g3_x1_0"):
        ppzoo.model_info("shufflenet_g3_x1_0")


def test_paddleclas_names_resolve_to_paddleclas_layout():
    assert resolve_name("MobileNetV1_x0_5") == ("mobilenet_v1_x0_5", {})
    assert resolve_name("MobileNetV2") == ("mobilenet_v2_x1_0", {"layout": "paddleclas"})
    assert resolve_name("AlexNet") == ("alexnet_single", {})
    assert resolve_name("ResNet34") == ("resnet34", {"layout": "paddleclas"})
    assert resolve_name("SqueezeNet1_1") == ("squeezenet1_1", {"layout": "paddleclas"})
    assert resolve_name("MOBILENET_V1_X1_0") == ("mobilenet_v1_x1_0", {})


def test_class_num_is_an_alias_of_num_classes():
    model = ppzoo.create_model("mobilenet_v1_x0_25", class_num=7)
    assert model.num_classes == 7
    with pytest.raises(ValueError, match="disagree"):
        ppzoo.create_model("mobilenet_v1_x0_25", num_classes=5, class_num=7)


def test_register_model_as_decorator_and_duplicate_rejected():
    @ppzoo.register_model(family="test", params=1.0)
    def _test_tiny_net(num_classes=1000, **kwargs):
        return ppzoo.create_model("mobilenet_v1_x0_25", num_classes=num_classes, **kwargs)

    try:
        assert ppzoo.model_info("_test_tiny_net").family == "test"
        assert ppzoo.create_model("_test_tiny_net", num_classes=3).num_classes == 3
        with pytest.raises(ValueError, match="already registered"):
            ppzoo.register_model(_test_tiny_net)
    finally:
        from ppzoo import registry
        registry._model_entrypoints.pop("_test_tiny_net")
        registry._model_info.pop("_test_tiny_net")
