"""What the front-ends share: the command line (:mod:`pytorch_grad_cam.cli`),
the dataset command (:mod:`pytorch_grad_cam.datasets.cli`) and the web demo
(:mod:`pytorch_grad_cam.demo`) import the library and this package, never
each other.

- :mod:`~pytorch_grad_cam.app.errors`: :class:`UsageError`, one-line
  errors and warnings;
- :mod:`~pytorch_grad_cam.app.options`: the argparse parser and option
  types the commands share;
- :mod:`~pytorch_grad_cam.app.devices`: choosing the device;
- :mod:`~pytorch_grad_cam.app.methods`: method lists (``gradcam,scorecam``,
  ``all``), checked by name before torch is imported;
- :mod:`~pytorch_grad_cam.app.recommended`: ``--method recommended``, the
  method the quality benchmark measured best for the model's family (its
  choice, written by ``bench/quality_benchmark.py``, in
  :mod:`~pytorch_grad_cam.app.recommended_table`);
- :mod:`~pytorch_grad_cam.app.classes`: ImageNet's class names, class-name
  files, the class(es) to explain, ``--top-k`` checked;
- :mod:`~pytorch_grad_cam.app.targets`: the classes explained for each image
  (given, top-k, top-1) and their maps from one call per method;
- :mod:`~pytorch_grad_cam.app.layers`: the target layers, given or found,
  checked by the library;
- :mod:`~pytorch_grad_cam.app.folders`: output folders checked before the work;
- :mod:`~pytorch_grad_cam.app.models`: the model options (``--model``,
  ``--weights``, ...) of :mod:`pytorch_grad_cam.models.loading`, its errors
  as usage errors.

The modules are imported by name; this package module imports none of them.
"""
