import pytest

import vidtok
from vidtok.registry import Registry, RegistryError


class Base:
    pass


@pytest.fixture
def reg():
    return Registry("widget", base=Base)


def test_register_get_create_list(reg):
    @reg.register("blue_widget", aliases=("blue",))
    class Blue(Base):
        def __init__(self, size=1):
            self.size = size

    @reg.register("red_widget")
    class Red(Base):
        pass

    assert reg.get("blue_widget") is Blue
    assert reg.get("blue") is Blue
    assert Blue.registry_name == "blue_widget"
    assert reg.create("blue", size=3).size == 3
    assert reg.create("blue", size=None).size == 1  # None overrides are dropped
    assert reg.list() == ["blue_widget", "red_widget"]
    assert reg.list("red_*") == ["red_widget"]
    assert reg.list("*_widget") == ["blue_widget", "red_widget"]
    assert reg.list("nothing*") == []
    assert "blue" in reg and "blue_widget" in reg and "green" not in reg
    assert len(reg) == 2
    assert list(reg) == ["blue_widget", "red_widget"]
    assert reg.aliases("blue_widget") == {"blue": "blue_widget"}
    assert reg.canonical_name("blue") == "blue_widget"


def test_duplicates_raise(reg):
    @reg.register("gmm", aliases=("mixture",))
    class A(Base):
        pass

    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("gmm")
        class B(Base):
            pass

    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("other", aliases=("mixture",))
        class C(Base):
            pass

    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("mixture")
        class D(Base):
            pass

    # a failed registration leaves nothing behind
    assert reg.list() == ["gmm"]
    assert "other" not in reg


def test_unknown_name_lists_close_matches(reg):
    for name in ("gaussian", "gmm", "diffusion_mlp"):
        reg.register(name)(type(name, (Base,), {}))
    with pytest.raises(KeyError) as err:
        reg.get("gausian")
    message = str(err.value)
    assert "unknown widget 'gausian'" in message
    assert "Did you mean: 'gaussian'" in message
    with pytest.raises(KeyError, match="diffusion_mlp"):
        reg.get("diffusion")  # substring match is suggested too
    with pytest.raises(KeyError, match="Registered widgets: diffusion_mlp, gaussian, gmm"):
        reg.get("zzz")


@pytest.mark.parametrize("name", ["GMM", "gmm-head", "2gmm", "gmm__x", "", "gmm_", "g mm"])
def test_invalid_names(reg, name):
    with pytest.raises(RegistryError, match="lower_snake_case"):
        reg.register(name)


def test_base_class_is_enforced(reg):
    with pytest.raises(RegistryError, match="must subclass"):

        @reg.register("stranger")
        class Stranger:
            pass

    with pytest.raises(RegistryError, match="must be a class"):
        reg.register("fn")(lambda: None)


def test_callable_registry_for_recipes():
    recipes = Registry("recipe", callable_only=True)

    @recipes.register("tiny_recipe")
    def tiny_recipe(head="gmm"):
        return {"head": head}

    assert recipes.create("tiny_recipe", head="l2") == {"head": "l2"}
    with pytest.raises(RegistryError, match="callable"):
        recipes.register("not_callable")(42)


def test_unregister(reg):
    reg.register("a_widget", aliases=("a",))(type("A", (Base,), {}))
    reg.unregister("a")
    assert "a" not in reg and "a_widget" not in reg
    with pytest.raises(KeyError):
        reg.get("a_widget")


def test_lazy_package_loading(tmp_path, monkeypatch):
    pkg = tmp_path / "plugin_pkg_for_registry_test"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from tests_registry_shared import REG\n@REG.register('from_package')\nclass FromPackage:\n    pass\n"
    )
    (tmp_path / "tests_registry_shared.py").write_text(
        "from vidtok.registry import Registry\nREG = Registry('thing', package='plugin_pkg_for_registry_test')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import tests_registry_shared

    assert tests_registry_shared.REG._loaded is False
    assert tests_registry_shared.REG.list() == ["from_package"]  # first lookup imported the package


def test_library_registries_are_registries_and_load():
    for name, kind in [
        ("TOKENIZERS", "tokenizer"),
        ("HEADS", "head"),
        ("BACKBONES", "backbone"),
        ("RECIPES", "recipe"),
    ]:
        registry = getattr(vidtok, name)
        assert isinstance(registry, Registry)
        assert registry.kind == kind
        names = registry.list()
        assert names == sorted(names)
        for entry_name in names:
            assert registry.get(entry_name).registry_name == entry_name
