import pytest

import ppzoo
from ppzoo.registry import resolve_name


def test_required_names_are_registered():
    expected = {"alexnet", "alexnet_single"}
    expected |= {f"mobilenet_v1_x{w}" for w in ("1_0", "0_75", "0_5", "0_25")}
    expected |= {f"mobilenet_v2_x{w}" for w in ("1_4", "1_0", "0_75", "0_5", "0_35")}
    expected |= {f"shufflenet_v1_g{g}_x{w}" for g in (1, 2, 3, 4, 8) for w in ("0_25", "0_5", "1_0", "1_5", "2_0")}
    expected |= {f"mobilenet_v2_x{w}.paddleclas" for w in ("1_0", "0_75", "0_5")}  # PaddleClas's layout
    assert set(ppzoo.list_models()) == expected


def test_list_models_filters_with_wildcards():
    assert ppzoo.list_models("mobilenet_v1*") == [
        "mobilenet_v1_x0_25", "mobilenet_v1_x0_5", "mobilenet_v1_x0_75", "mobilenet_v1_x1_0"]
    assert len(ppzoo.list_models("shufflenet_v1_g3_*")) == 5
    assert ppzoo.list_models("nothing*") == []


def test_model_info_carries_published_facts():
    info = ppzoo.model_info("mobilenet_v1_x1_0")
    assert (info.family, info.paper, info.input_size) == ("mobilenet_v1", "1704.04861", (3, 224, 224))
    assert (info.params, info.madds, info.top1) == (4.24, 569, 70.6)
    assert info.paper_url == "https://arxiv.org/abs/1704.04861"
    assert ppzoo.model_info("alexnet").input_size == (3, 227, 227)
    assert ppzoo.model_info("shufflenet_v1_g2_x0_25").madds is None  # nothing published


@pytest.mark.parametrize("name", ppzoo.list_models())
def test_model_info_is_complete(name):
    info = ppzoo.model_info(name)
    assert info.name == name and info.family and info.paper and len(info.input_size) == 3
    assert (info.params is None) == (info.madds is None)  # published together or not at all
    assert 0 < info.crop_pct <= 1 and len(info.mean) == len(info.std) == 3


def test_unknown_name_lists_closest_names():
    with pytest.raises(ValueError, match=r"unknown model 'mobilenet_v1_x1'.*mobilenet_v1_x1_0"):
        ppzoo.create_model("mobilenet_v1_x1")
    with pytest.raises(ValueError, match="shufflenet_v1_g3_x1_0"):
        ppzoo.model_info("shufflenet_g3_x1_0")


def test_paddleclas_names_resolve_to_paddleclas_layout():
    assert resolve_name("MobileNetV1_x0_5") == "mobilenet_v1_x0_5"
    assert resolve_name("MobileNetV2") == "mobilenet_v2_x1_0.paddleclas"
    assert resolve_name("AlexNet") == "alexnet_single"
    assert resolve_name("MOBILENET_V1_X1_0") == "mobilenet_v1_x1_0"


def test_tagged_entry_reports_its_own_layout():
    from ppzoo.analysis import count_madds

    plain, tagged = ppzoo.model_info("mobilenet_v2_x1_0"), ppzoo.model_info("MobileNetV2")
    assert tagged.name == "mobilenet_v2_x1_0.paddleclas" and tagged.paddleclas_names == ("MobileNetV2",)
    assert (plain.madds, tagged.madds) == (300, 313.6)
    model = ppzoo.create_model("MobileNetV2")
    assert abs(count_madds(model, (3, 224, 224)) / 1e6 - tagged.madds) < 0.1
    assert ppzoo.registry.model_entrypoint("MobileNetV2") is ppzoo.registry.model_entrypoint(tagged.name)


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
