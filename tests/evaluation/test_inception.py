"""The FID Inception definition, its pickle-free converter and the hash check (random weights:
the real ones cannot be downloaded here)."""

import pytest
import torch

from trainer.evaluation import inception
from trainer.evaluation.features import InceptionFeatures


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inception")
    torch.manual_seed(0)
    net = inception.FIDInception()
    torch.save(net.state_dict(), folder / "random.pth")  # tensors only, as the published .pth
    sha = inception.convert(folder / "random.pth", folder / "random.safetensors")
    return net.eval(), folder / "random.safetensors", sha


def test_converted_weights_give_the_same_network(converted):
    net, path, sha = converted
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(23.85e6, rel=0.01)  # Inception v3 without aux
    extractor = InceptionFeatures(path, sha)
    images = torch.randint(0, 256, (1, 1, 32, 32), dtype=torch.uint8)  # grayscale, any size: resized to 299
    features, probabilities = extractor(images)
    assert features.shape == (1, 2048) and probabilities.shape == (1, 1008)
    assert (features >= 0).all()  # pool3 follows a ReLU
    with torch.no_grad():
        x = torch.nn.functional.interpolate(images.float().repeat(1, 3, 1, 1), size=(299, 299), mode="bilinear")
        torch.testing.assert_close(torch.from_numpy(features).float(), net(x)[0], atol=1e-4, rtol=1e-4)


def test_wrong_hash_and_wrong_files_are_clear_errors(converted, tmp_path):
    _, path, _ = converted
    with pytest.raises(ValueError, match="--inception-sha256"):
        inception.load(path, "0" * 64)
    (tmp_path / "x.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="must be safetensors"):
        inception.load(tmp_path / "x.pth", None)
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not the FID Inception network"):
        inception.convert(tmp_path / "other.pth", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
