"""The forward passes a run will make: moved to :mod:`pytorch_grad_cam.app.cost`
(shared by the image command and the dataset runner); this name keeps working."""
from pytorch_grad_cam.app.cost import AUG_SMOOTH_COPIES, Cost, cost_report, method_cost, samples_of

__all__ = ["AUG_SMOOTH_COPIES", "Cost", "cost_report", "method_cost", "samples_of"]
