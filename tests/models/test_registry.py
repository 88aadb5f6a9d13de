import pytest

from gitract.models import make_model


@pytest.mark.parametrize(("name", "cls"), [("rf", "Pipeline"), ("lgbm", "Pipeline"),
                                          ("cnn", "BlockCNNClassifier"), ("unet", "UNetSegmenter")])
def test_registry_builds_each_model(name, cls):
    assert type(make_model(name)).__name__ == cls


def test_registry_names_unknown_model():
    with pytest.raises(ValueError, match="svm"):
        make_model("svm")
