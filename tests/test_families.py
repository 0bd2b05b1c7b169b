"""Every registered task family is a complete declaration (driven by the registry, like timm's tests)."""

from __future__ import annotations

import json
import re

import pytest

from specloop.errors import SpecloopError
from specloop.families import Family, get_family, list_families
from specloop.skills.scaffold.codegen import TEMPLATE_ROOT, project_answers

FAMILIES = list_families()
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(params=FAMILIES, ids=lambda f: f.name)
def family(request: pytest.FixtureRequest) -> Family:
    return request.param


def test_at_least_the_families_of_the_issue_are_registered() -> None:
    names = {f.name for f in FAMILIES}
    assert {"image_classification", "tabular", "timeseries"} <= names


def test_declaration_is_complete(family: Family) -> None:
    assert len(family.candidates) >= 2
    assert len({c.name for c in family.candidates}) == len(family.candidates)
    assert family.metric and family.title and family.modality and family.task
    assert family.keywords.get("en") and family.keywords.get("zh")
    assert all(CJK.search(word) for word in family.keywords["zh"] if not word.isascii())
    assert any(CJK.search(word) for word in family.keywords["zh"])
    assert "data" in family.config and family.mini_per_class >= 2
    assert family.full_train_samples > 0


def test_datasets_are_named_with_size_licence_and_how_to_get_them(family: Family) -> None:
    assert family.mini_dataset.offline
    for ref in (family.mini_dataset, family.full_dataset):
        assert ref.name and ref.source and ref.size and ref.licence and ref.how_to_obtain


def test_candidates_declare_a_model_section_and_their_trade_offs(family: Family) -> None:
    for c in family.candidates:
        assert c.model.get("arch"), c.name
        assert c.title and c.description and c.pros and c.cons and c.constraints
        assert all(re.match(r"^[A-Za-z0-9_.-]+(\[[a-z,]+\])?[<>=!~]=?[0-9]", r) for r in c.requirements), c


def test_template_folder_has_the_family_parts(family: Family) -> None:
    folder = TEMPLATE_ROOT / family.template
    for part in ("src/__pkg__/data.py.j2", "src/__pkg__/model.py.j2", "_parts/readme.md.j2"):
        assert (folder / part).is_file(), part
    assert (folder / "_parts" / "notebook_samples.py.j2").is_file()


def test_answers_are_plain_sorted_json(family: Family) -> None:
    for c in family.candidates:
        answers = project_answers(family, c, project_name="demo-project")
        assert json.loads(json.dumps(answers)) == answers
        assert list(answers) == sorted(answers)
        assert answers["package"] == "demo_project"
        assert set(answers["config"]) == {"data", "model", "train", "infer", "serve"}


def test_torch_only_candidates_need_no_torchvision(family: Family) -> None:
    for c in family.candidates:
        needs = {
            r.split(">")[0].split("=")[0]
            for r in project_answers(family, c, project_name="x")["requirements"]
        }
        if "timm" in needs:
            assert "torchvision" in needs, c.name
        elif family.modality in {"image", "tabular", "timeseries"}:
            assert "torchvision" not in needs, c.name


def test_the_chinese_digits_requirement_matches_image_classification() -> None:
    text = "帮我做一个手写数字识别的小模型，能在笔记本CPU上跑就行。"
    hits = {f.name: sum(w in text for w in f.keywords["zh"]) for f in FAMILIES}
    assert hits["image_classification"] == max(hits.values()) > 0, hits


def test_labels_rename_the_mini_classes_only_when_they_fit() -> None:
    image = get_family("image_classification")
    ten = [f"d{i}" for i in range(10)]
    fitted = project_answers(image, image.candidates[0], project_name="digits", labels=ten)
    assert fitted["labels"] == ten and fitted["config"]["model"]["num_classes"] == 10
    kept = project_answers(image, image.candidates[0], project_name="digits", labels=["cat", "dog"])
    assert kept["labels"] == list(image.labels) and kept["requested_labels"] == ["cat", "dog"]


@pytest.mark.parametrize("label", ["", "a/b", ".."])
def test_a_label_that_cannot_name_a_folder_is_one_sentence(label: str) -> None:
    image = get_family("image_classification")
    with pytest.raises(SpecloopError, match="label"):
        project_answers(image, image.candidates[0], project_name="digits", labels=[label, "x"])


@pytest.mark.parametrize("name", ["Digit Recognizer", "1st", "", "a/b", "手写"])
def test_a_bad_project_name_is_one_sentence(name: str) -> None:
    image = get_family("image_classification")
    with pytest.raises(SpecloopError, match="project name"):
        project_answers(image, image.candidates[0], project_name=name)


def test_a_foreign_candidate_is_refused() -> None:
    image, tabular = get_family("image_classification"), get_family("tabular")
    with pytest.raises(SpecloopError, match="not one of"):
        project_answers(image, tabular.candidates[0], project_name="mixed")
