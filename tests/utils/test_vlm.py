"""Explaining a LLaVA model's answer as a map over the image
(``pytorch_grad_cam.vlm``, ``models.llava``, ``utils.vlm_targets``), on a
tiny LLaVA with random weights (a 2-block CLIP tower on 32 x 32 images,
8 x 8 patches, and a 1-layer Llama) and a word-level processor built
offline."""
import re

import numpy as np
import pytest
import torch
from core.test_fault_injection import assert_same_state, snapshot  # tests/core/

from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.models.llava import ImageTokenGrid, find_llava
from pytorch_grad_cam.utils.vlm_targets import AnswerLogitTarget, AnswerLogProbTarget
from pytorch_grad_cam.vlm import LlavaImageModel, llava_answer, llava_answer_from_ids

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["<pad>", "<s>", "</s>", "<unk>", "USER:", "ASSISTANT:", "what", "is", "this?", "a",
         "cat", "dog", "red", "car", "<image>"]
IMAGE_TOKEN = WORDS.index("<image>")
PROMPT = "USER: <image> what is this? ASSISTANT:"


def tiny_llava(feature_layer=-2, strategy="default", seed=0, tower="clip"):
    torch.manual_seed(seed)
    tower_config = {"clip": transformers.CLIPVisionConfig,
                    "siglip": transformers.SiglipVisionConfig}[tower]
    vision = tower_config(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                          num_attention_heads=2, image_size=32, patch_size=8)
    text = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                    num_attention_heads=2, num_key_value_heads=2,
                                    vocab_size=len(WORDS))
    config = transformers.LlavaConfig(vision_config=vision, text_config=text,
                                      image_token_id=IMAGE_TOKEN,
                                      vision_feature_layer=feature_layer,
                                      vision_feature_select_strategy=strategy)
    return transformers.LlavaForConditionalGeneration(config).eval()


def tiny_processor(strategy="default"):
    word_level = tokenizers.Tokenizer(tokenizers.models.WordLevel(
        {word: i for i, word in enumerate(WORDS)}, unk_token="<unk>"))
    word_level.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    images = transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                             crop_size={"height": 32, "width": 32})
    return transformers.LlavaProcessor(image_processor=images, tokenizer=tokenizer, patch_size=8,
                                       vision_feature_select_strategy=strategy,
                                       num_additional_image_tokens=1, image_token="<image>")


@pytest.fixture(scope="module")
def model():
    return tiny_llava()


@pytest.fixture(scope="module")
def processor():
    return tiny_processor()


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)


def explain(setup, method=GradCAM, **kwargs):
    with method(setup.model, target_layers=setup.target_layers,
                reshape_transform=setup.reshape_transform, **kwargs) as cam:
        return cam(setup.input_tensor, targets=setup.targets)


# ------------------------------------------------------------------ the map
@pytest.mark.parametrize("layer", ["projector", "vision"])
@pytest.mark.parametrize("method", [GradCAM, GradCAMPlusPlus, LayerCAM, EigenCAM])
def test_the_map_is_at_the_image_resolution_and_not_constant(model, processor, image, layer,
                                                             method):
    setup = llava_answer(model, processor, image, PROMPT, "a cat", layer=layer)
    maps = explain(setup, method)
    assert maps.shape == (1, 32, 32)
    assert maps.std() > 0.05 and maps.max() == pytest.approx(1.0)


def test_score_cam_runs_on_the_projector(model, processor, image):
    setup = llava_answer(model, processor, image, PROMPT, "a cat")
    maps = explain(setup, ScoreCAM, progress=False, batch_size=8)
    assert maps.shape == (1, 32, 32) and maps.std() > 0.05


@pytest.mark.parametrize("layer", ["projector", "vision"])
def test_the_map_changes_with_the_answer(model, processor, image, layer):
    cat = explain(llava_answer(model, processor, image, PROMPT, "a cat", layer=layer))
    car = explain(llava_answer(model, processor, image, PROMPT, "a red car", layer=layer))
    again = explain(llava_answer(model, processor, image, PROMPT, "a cat", layer=layer))
    np.testing.assert_array_equal(cat, again)
    assert np.abs(cat - car).max() > 0.2


def test_a_batch_of_images_gets_one_map_each(model, processor, image):
    setup = llava_answer(model, processor, image, PROMPT, "a cat")
    single = explain(setup)
    batch = torch.cat([setup.input_tensor, setup.input_tensor.flip(-1)])
    setup2 = llava_answer_from_ids(model, setup.input_ids[:, :setup.answer_start], batch,
                                   setup.answer_ids)
    maps = explain(setup2)
    assert maps.shape == (2, 32, 32)
    np.testing.assert_allclose(maps[0], single[0], atol=1e-5)
    assert np.abs(maps[1] - maps[0]).max() > 0.05


# --------------------------------------------------------------- the target
def test_the_wrapper_gives_the_model_s_own_logits(model, processor, image):
    setup = llava_answer(model, processor, image, PROMPT, "a red car")
    with torch.no_grad():
        own = model(input_ids=setup.input_ids, pixel_values=setup.input_tensor).logits
        wrapped = setup.model(setup.input_tensor)
    torch.testing.assert_close(wrapped, own)


@pytest.mark.parametrize(("tower", "feature_layer", "strategy", "tokens", "prefixes"), [
    ("clip", -2, "full", 17, (1, 1)),
    ("clip", [0, -1], "default", 16, (0, 1)),
    ("siglip", -1, "full", 16, (0, 0)),
    ("siglip", [0, -2], "full", 16, (0, 0))])
def test_feature_layers_and_strategies_follow_the_model(tower, feature_layer, strategy, tokens,
                                                        prefixes):
    """The wrapper's forward pass reads the hidden states and keeps the
    class token as the model does (the same logits), and the grids drop
    the class token where it is kept."""
    model = tiny_llava(feature_layer, strategy, tower=tower)
    llava = find_llava(model)
    assert llava.image_tokens == tokens
    ids = torch.tensor([[4] + [IMAGE_TOKEN] * tokens + [6, 7]])
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        own = model(input_ids=ids.expand(2, -1), pixel_values=pixels).logits
        wrapped = LlavaImageModel(model, ids)(pixels)
    torch.testing.assert_close(wrapped, own)
    assert (llava.reshape_transform("projector").prefix,
            llava.reshape_transform("vision").prefix) == prefixes
    for layer in ("projector", "vision"):
        maps = explain(llava_answer_from_ids(model, ids, pixels, [12], layer=layer), LayerCAM)
        assert maps.shape == (2, 32, 32) and maps.std(axis=(1, 2)).min() > 0.05


def test_a_strategy_that_drops_a_patch_is_refused():
    with pytest.raises(ValueError, match=re.escape(
            "LlavaForConditionalGeneration: vision_feature_select_strategy='default' drops the "
            "first token, but the vision tower (SiglipVisionModel) has no class token, so the "
            "image tokens are no patch grid")):
        find_llava(tiny_llava(-1, "default", tower="siglip"))


def test_the_log_prob_target_is_the_hand_computed_sum(model, processor, image):
    setup = llava_answer(model, processor, image, PROMPT, "a red car")
    assert setup.answer_ids == [WORDS.index("a"), WORDS.index("red"), WORDS.index("car")]
    prompt = processor(images=image, text=PROMPT, return_tensors="pt")["input_ids"]
    assert setup.answer_start == prompt.shape[1] == 21
    torch.testing.assert_close(setup.input_ids[0, :21], prompt[0])
    with torch.no_grad():
        logits = model(input_ids=setup.input_ids, pixel_values=setup.input_tensor).logits[0]
    log_prob, logit_sum = 0.0, 0.0
    for k, token in enumerate(setup.answer_ids):
        row = logits[20 + k].double()  # row t predicts the token at t + 1
        log_prob += float(row[token] - torch.log(torch.exp(row).sum()))
        logit_sum += float(row[token])
    assert float(setup.targets[0](logits)) == pytest.approx(log_prob, rel=1e-5)
    logit_setup = llava_answer(model, processor, image, PROMPT, "a red car", score="logit")
    assert isinstance(logit_setup.targets[0], AnswerLogitTarget)
    assert float(logit_setup.targets[0](logits)) == pytest.approx(logit_sum, rel=1e-5)
    # a batch of logits: one score per image
    batched = setup.targets[0](torch.stack([logits, logits]))
    assert batched.shape == (2,) and float(batched[1]) == pytest.approx(log_prob, rel=1e-5)


def test_an_answer_given_as_token_ids(model, processor, image):
    by_text = llava_answer(model, processor, image, PROMPT, "a cat")
    by_ids = llava_answer(model, processor, image, PROMPT, [9, 10])
    assert by_ids.answer_ids == by_text.answer_ids == [9, 10]
    np.testing.assert_array_equal(explain(by_ids), explain(by_text))


def test_the_target_checks_the_logits_it_gets():
    target = AnswerLogProbTarget([3, 4], start=5)
    with pytest.raises(ValueError, match=re.escape(
            "the answer's tokens sit at positions 5..6, but the logits cover 6 positions")):
        target.check_output(torch.zeros(6, 10))
    with pytest.raises(ValueError, match=re.escape(
            "token id 4 is out of range for a vocabulary of 4 (allowed 0..3)")):
        target.check_output(torch.zeros(7, 4))
    target.check_output(torch.zeros(7, 5))
    assert repr(target) == "AnswerLogProbTarget(token_ids=[3, 4], start=5)"


# ----------------------------------------------------------- the token grid
def test_the_grid_is_the_model_s_own_image_token_positions(model, processor, image):
    """Cell (r, c) of the projector's grid is the embedding the language
    model reads at the (r * 4 + c)-th image token of its sequence."""
    setup = llava_answer(model, processor, image, PROMPT, "a cat")
    seen = {}
    handles = [
        model.model.multi_modal_projector.register_forward_hook(
            lambda m, i, o: seen.__setitem__("projector", o)),
        model.model.language_model.register_forward_pre_hook(
            lambda m, a, k: seen.__setitem__("embeds", k["inputs_embeds"]), with_kwargs=True)]
    try:
        with torch.no_grad():
            model(input_ids=setup.input_ids, pixel_values=setup.input_tensor)
    finally:
        for handle in handles:
            handle.remove()
    grid = setup.reshape_transform(seen["projector"])
    assert grid.shape == (1, 16, 4, 4)
    positions = (setup.input_ids[0] == IMAGE_TOKEN).nonzero()[:, 0].tolist()
    assert positions == list(range(1, 17))
    for r in range(4):
        for c in range(4):
            torch.testing.assert_close(grid[0, :, r, c], seen["embeds"][0, positions[r * 4 + c]])


@pytest.mark.parametrize("strategy", ["default", "full"])
@pytest.mark.parametrize("layer", ["projector", "vision"])
def test_perturbing_one_patch_changes_only_its_cell(layer, strategy):
    """With vision_feature_layer=0 (the patch embeddings) every image token
    depends on its own patch only: changing the pixels of patch (1, 2)
    changes cell (1, 2) of the grid and no other."""
    model = tiny_llava(feature_layer=0, strategy=strategy)
    llava = find_llava(model)
    ids = torch.tensor([[4] + [IMAGE_TOKEN] * llava.image_tokens + [6, 7]])
    pixels = torch.randn(1, 3, 32, 32)
    moved = pixels.clone()
    moved[:, :, 8:16, 16:24] += 1.0
    wrapper = LlavaImageModel(model, ids)
    reshape = llava.reshape_transform(layer)
    assert reshape.prefix == (1 if layer == "vision" or strategy == "full" else 0)
    grids = []
    for x in (pixels, moved):
        seen: list = []
        handle = wrapper.target_layer(layer).register_forward_hook(
            lambda m, i, o, seen=seen: seen.append(o))
        try:
            with torch.no_grad():
                wrapper(x)
        finally:
            handle.remove()
        grids.append(reshape(seen[0]))
    change = (grids[1] - grids[0]).abs().amax(dim=1)[0]
    assert change[1, 2] > 1e-3
    change[1, 2] = 0
    assert float(change.max()) < 1e-6


def test_the_token_grid_names_a_wrong_token_count():
    with pytest.raises(ValueError, match=re.escape(
            "ImageTokenGrid(rows=4, columns=4, prefix=1): the layer returned 16 tokens, expected "
            "17 (1 class token(s) and a 4 x 4 patch grid)")):
        ImageTokenGrid(4, 4, 1)(torch.zeros(1, 16, 8))


# ------------------------------------------------------------------ errors
def test_an_empty_answer_is_refused(model, processor, image):
    for answer in ("", "   "):
        with pytest.raises(ValueError, match=re.escape(
                f"answer is empty ({answer!r}): give the answer's text or token ids")):
            llava_answer(model, processor, image, PROMPT, answer)
    with pytest.raises(ValueError, match=re.escape(
            "answer is empty: an answer needs at least one token")):
        llava_answer(model, processor, image, PROMPT, [])
    ids = processor(images=image, text=PROMPT, return_tensors="pt")["input_ids"]
    with pytest.raises(ValueError, match=re.escape(
            "answer_ids is empty: an answer needs at least one token")):
        llava_answer_from_ids(model, ids, torch.zeros(1, 3, 32, 32), torch.tensor([]).long())


def test_bad_answer_ids_pixel_values_and_masks_are_refused(model, processor, image):
    ids = processor(images=image, text=PROMPT, return_tensors="pt")["input_ids"]
    pixels = torch.zeros(1, 3, 32, 32)
    with pytest.raises(TypeError, match=re.escape(
            "answer must be a string or token ids, got None (NoneType)")):
        llava_answer(model, processor, image, PROMPT, None)
    with pytest.raises(TypeError, match=re.escape(
            "answer must hold non-negative int token ids, got 1.5 (float)")):
        llava_answer(model, processor, image, PROMPT, [9, 1.5])
    with pytest.raises(ValueError, match=re.escape(
            "answer_ids hold token id 15, out of range for the model's vocabulary of 15 "
            "(allowed 0..14)")):
        llava_answer_from_ids(model, ids, pixels, [9, 15])
    with pytest.raises(ValueError, match=re.escape(
            "pixel_values must be a B x 3 x 32 x 32 tensor (the vision tower's image_size), got "
            "Tensor of shape (1, 3, 64, 64)")):
        llava_answer_from_ids(model, ids, torch.zeros(1, 3, 64, 64), [9])
    with pytest.raises(ValueError, match=re.escape(
            "attention_mask has shape (1, 3), input_ids (1, 21); they must match")):
        llava_answer_from_ids(model, ids, pixels, [9], attention_mask=torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match=re.escape(
            "input_ids must be the token ids of one sequence, an int tensor of shape T or 1 x T, "
            "got Tensor of shape (2, 21)")):
        llava_answer_from_ids(model, ids.expand(2, -1), pixels, [9])


def test_a_prompt_without_the_image_token_is_refused(model, processor, image):
    with pytest.raises(ValueError, match=re.escape(
            "prompt must contain the image token '<image>' once (where the image goes), got 0 "
            "in 'USER: what is this? ASSISTANT:'")):
        llava_answer(model, processor, image, "USER: what is this? ASSISTANT:", "a cat")
    with pytest.raises(ValueError, match=re.escape(
            "input_ids hold no image token (id 14): the prompt must say where the image goes")):
        llava_answer_from_ids(model, torch.tensor([4, 6, 7]), torch.zeros(1, 3, 32, 32), [9])
    with pytest.raises(ValueError, match=re.escape(
            "input_ids hold 1 image tokens (id 14); one image takes 16 (a 4 x 4 patch grid, "
            "strategy 'default')")):
        llava_answer_from_ids(model, torch.tensor([4, 14, 6]), torch.zeros(1, 3, 32, 32), [9])


def test_a_model_that_is_not_llava_is_refused(processor, image):
    vit = transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8))
    for model, name in ((vit, "CLIPVisionModel"), (torch.nn.Linear(2, 2), "Linear")):
        with pytest.raises(ValueError, match=re.escape(
                "model must be a LLaVA-style vision-language model (transformers' "
                f"LlavaForConditionalGeneration), got {name}; other families (LLaVA-NeXT, "
                "LLaVA-OneVision, InternVL, Qwen-VL) lay their image tokens out differently")):
            llava_answer(model, processor, image, PROMPT, "a cat")


def test_unknown_layer_and_score_are_refused(model, processor, image):
    with pytest.raises(ValueError, match=re.escape(
            "layer must be one of 'projector', 'vision', got 'head' (str)")):
        llava_answer(model, processor, image, PROMPT, "a cat", layer="head")
    with pytest.raises(ValueError, match=re.escape(
            "score must be one of 'log_prob', 'logit', got 'prob' (str)")):
        llava_answer(model, processor, image, PROMPT, "a cat", score="prob")
    with pytest.raises(TypeError, match=re.escape(
            "processor must be the model's LlavaProcessor (callable, with an image_token), got "
            "str")):
        llava_answer(model, "llava-hf/llava-1.5-7b-hf", image, PROMPT, "a cat")


# ------------------------------------------------------------- model state
def test_the_user_s_model_is_left_as_it_was(processor, image):
    model = tiny_llava()
    model.train()
    model.model.vision_tower.eval()
    model.lm_head.weight.requires_grad_(False)
    model.model.multi_modal_projector.linear_1.bias.grad = torch.ones(16)
    # transformers adds the hooks that record hidden states at a model's
    # first forward pass that asks for them: the user's model has run once
    with torch.no_grad():
        model(input_ids=torch.tensor([[4] + [IMAGE_TOKEN] * 16]),
              pixel_values=torch.zeros(1, 3, 32, 32), output_hidden_states=True)
    before = snapshot(model)
    for layer in ("projector", "vision"):
        explain(llava_answer(model, processor, image, PROMPT, "a cat", layer=layer))
    explain(llava_answer(model, processor, image, PROMPT, "a cat"), ScoreCAM, progress=False,
            batch_size=16)
    assert_same_state(before, snapshot(model))
