"""A config in PaddleClas's ImageNet schema (keys, op names, ``device: gpu``, ``scale:
1.0/255.0``) runs unchanged once its paths point at data."""
import json

from conftest import make_image_tree, run_tool

PADDLECLAS_STYLE = """\
# global configs
Global:
  checkpoints: null
  pretrained_model: null
  output_dir: {out}
  device: gpu
  save_interval: 1
  eval_during_train: True
  eval_interval: 1
  epochs: 1
  print_batch_step: 10
  use_visualdl: False
  image_shape: [3, 224, 224]
  save_inference_dir: ./inference
  to_static: False

Arch:
  name: MobileNetV1_x0_25
  class_num: 1000

Loss:
  Train:
    - CELoss:
        weight: 1.0
  Eval:
    - CELoss:
        weight: 1.0

Optimizer:
  name: Momentum
  momentum: 0.9
  lr:
    name: Piecewise
    learning_rate: 0.1
    decay_epochs: [30, 60, 90]
    values: [0.1, 0.01, 0.001, 0.0001]
  regularizer:
    name: 'L2'
    coeff: 0.00003

DataLoader:
  Train:
    dataset:
      name: ImageNetDataset
      image_root: {root}
      cls_label_path: {root}/list.txt
      transform_ops:
        - DecodeImage:
            to_rgb: True
            channel_first: False
        - RandCropImage:
            size: 224
        - RandFlipImage:
            flip_code: 1
        - NormalizeImage:
            scale: 1.0/255.0
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''
    sampler:
      name: DistributedBatchSampler
      batch_size: 4
      drop_last: False
      shuffle: True
    loader:
      num_workers: 2
      use_shared_memory: True
  Eval:
    dataset:
      name: ImageNetDataset
      image_root: {root}
      cls_label_path: {root}/list.txt
      transform_ops:
        - DecodeImage:
            to_rgb: True
            channel_first: False
        - ResizeImage:
            resize_short: 256
        - CropImage:
            size: 224
        - NormalizeImage:
            scale: 1.0/255.0
            mean: [0.485, 0.456, 0.406]
            std: [0.229, 0.224, 0.225]
            order: ''
    sampler:
      name: DistributedBatchSampler
      batch_size: 4
      drop_last: False
      shuffle: False
    loader:
      num_workers: 2
      use_shared_memory: True

Infer:
  infer_imgs: docs/images/whl/demo.jpg
  batch_size: 10
  transforms:
    - DecodeImage:
        to_rgb: True
        channel_first: False
    - ResizeImage:
        resize_short: 256
    - CropImage:
        size: 224
    - NormalizeImage:
        scale: 1.0/255.0
        mean: [0.485, 0.456, 0.406]
        std: [0.229, 0.224, 0.225]
        order: ''
    - ToCHWImage:
  PostProcess:
    name: Topk
    topk: 5
    class_id_map_file: ppcls/utils/imagenet1k_label_list.txt

Metric:
  Train:
    - TopkAcc:
        topk: [1, 5]
  Eval:
    - TopkAcc:
        topk: [1, 5]
"""


def test_paddleclas_imagenet_yaml_runs_unchanged(tmp_path):
    root = make_image_tree(tmp_path / "data", classes=3, per_class=3, size=40)
    cfg = tmp_path / "MobileNetV1_x0_25.yaml"
    cfg.write_text(PADDLECLAS_STYLE.format(out=tmp_path / "output", root=root))
    result = run_tool("tools/train.py", "-c", cfg)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "device 'gpu' requested but" in result.stdout and "running on CPU" in result.stdout
    metrics = json.loads((tmp_path / "output" / "MobileNetV1_x0_25" / "metrics.json").read_text())
    assert metrics["last"]["images"] == 9 and metrics["epochs"] == 1
    weights = tmp_path / "output" / "MobileNetV1_x0_25" / "best_model"
    result = run_tool("tools/eval.py", "-c", cfg, "-o", f"Global.pretrained_model={weights}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MobileNetV1_x0_25 on 9 images: top1" in result.stdout
