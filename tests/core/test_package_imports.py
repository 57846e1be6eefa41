"""``import pytorch_grad_cam`` is cheap: the public names, the methods and
torch are imported when first used, and ``METHODS`` keeps its order
whichever module is imported first."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytorch_grad_cam
from pytorch_grad_cam import METHODS, registry

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_package_and_the_registry_import_no_torch():
    out = _python("""
        import sys
        import pytorch_grad_cam
        from pytorch_grad_cam import registry
        print("torch" in sys.modules, registry.find_method_name("GradCAMPlusPlus"),
              registry.find_method_name("nosuch"), len(registry.method_names()))
        pytorch_grad_cam.GradCAM  # the first public name imports them all
        print("torch" in sys.modules, "GradCAMPlusPlus" in vars(pytorch_grad_cam),
              "metrics" in vars(pytorch_grad_cam))
    """)
    assert out.splitlines() == ["False gradcam++ None 28", "True True True"]


def test_methods_keep_their_order_whichever_module_comes_first():
    out = _python("""
        from pytorch_grad_cam.score_cam import ScoreCAM
        from pytorch_grad_cam.legrad import LeGrad
        from pytorch_grad_cam import METHODS
        print(",".join(METHODS))
    """)
    assert out.strip() == ",".join(METHODS)
    assert list(METHODS)[:3] == ["gradcam", "hirescam", "gradcam++"]


def test_the_table_of_the_librarys_methods_is_the_registry():
    registered = [(name, cls.__module__, cls.__name__) for name, cls in METHODS.items()]
    assert registered == list(registry.LIBRARY_METHODS)
    assert registry.method_names() == list(METHODS)
    for name, _, cls in registry.LIBRARY_METHODS:
        assert getattr(pytorch_grad_cam, cls) is METHODS[name]
        assert registry.find_method_name(cls.upper()) == name


def test_submodules_are_reached_as_attributes():
    assert pytorch_grad_cam.metrics.road.ROADCombined.__name__ == "ROADCombined"
    assert pytorch_grad_cam.utils.show_cam_on_image is pytorch_grad_cam.utils.image.show_cam_on_image
    assert set(pytorch_grad_cam.__all__) <= set(dir(pytorch_grad_cam))
