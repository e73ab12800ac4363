"""Type-checking data flow between capabilities, on the JSON Schemas pydantic writes."""

from __future__ import annotations

import doctest
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from motet.agents.builtins import Keywords, Sentiment, Summary, Text
from motet.composer import _schemas, _types
from motet.composer._schemas import fields_of, required_of
from motet.composer._types import check_inputs, compatible
from motet.errors import GraphError


class Inner(BaseModel):
    n: int
    tags: list[str] = []


class Outer(BaseModel):
    inner: Inner
    label: str = ""


class OuterWanted(BaseModel):
    inner: Inner


class Tree(BaseModel):
    value: int
    children: list[Tree] = []


class Count(BaseModel):
    count: int


class Words(BaseModel):
    count: str


class Ratio(BaseModel):
    count: float


class Numbers(BaseModel):
    keywords: list[int]


class MaybeText(BaseModel):
    text: str | None = None


class Mood(BaseModel):
    sentiment: Literal["positive", "negative"]


class MoodOrMixed(BaseModel):
    sentiment: Literal["positive", "negative", "neutral", "mixed"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int


class Loose(BaseModel):
    n: int
    extra: str


class Anything(BaseModel):
    text: Any


class Short(BaseModel):
    text: str = Field(max_length=10)


def field(model: type[BaseModel], name: str) -> dict[str, Any]:
    return fields_of(model.model_json_schema())[name]


def out(*models: type[BaseModel]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for model in models:
        merged.update(fields_of(model.model_json_schema()))
    return merged


@pytest.mark.parametrize("module", [_schemas, _types])
def test_docstring_examples_run(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# -- fields_of / required_of --------------------------------------------------------------------------


def test_fields_of_inlines_refs_from_defs() -> None:
    fields = fields_of(Outer.model_json_schema())
    assert list(fields) == ["inner", "label"]
    assert fields["inner"]["properties"]["n"]["type"] == "integer"
    assert "$ref" not in str(fields)


def test_fields_of_cuts_a_recursive_model_where_it_recurs() -> None:
    schema = Tree.model_json_schema()
    assert "$ref" in schema  # pydantic puts a recursive model itself under $defs
    fields = fields_of(schema)
    assert fields["value"]["type"] == "integer"
    assert fields["children"]["items"] == {}


def test_fields_of_reads_definitions_and_escaped_pointers() -> None:
    schema = {
        "definitions": {"a/b": {"type": "integer"}},
        "properties": {
            "x": {"$ref": "#/definitions/a~1b", "description": "kept"},
            "y": {"$ref": "#/nowhere"},
        },
    }
    assert fields_of(schema) == {"x": {"type": "integer", "description": "kept"}, "y": {}}


def test_fields_of_a_schema_without_properties_is_empty() -> None:
    assert fields_of({}) == {}
    assert fields_of({"type": "string"}) == {}


def test_fields_of_stays_small_for_a_schema_that_references_its_defs_exponentially() -> None:
    depth = 40
    defs = {
        f"D{i}": {
            "type": "object",
            "properties": {"a": {"$ref": f"#/$defs/D{i + 1}"}, "b": {"$ref": f"#/$defs/D{i + 1}"}},
        }
        for i in range(depth)
    }
    defs[f"D{depth}"] = {"type": "integer"}
    schema = {"$defs": defs, "properties": {"top": {"$ref": "#/$defs/D0"}}}
    top = fields_of(schema)["top"]
    assert top["properties"]["a"]["properties"]["b"]["type"] == "object"
    assert compatible(top, top) is None


def test_required_of() -> None:
    assert required_of(Outer.model_json_schema()) == {"inner"}
    assert required_of(Tree.model_json_schema()) == {"value"}
    assert required_of({}) == set()


# -- compatible ---------------------------------------------------------------------------------------


def test_same_type_fits() -> None:
    assert compatible(field(Summary, "summary"), field(Text, "text")) is None


def test_string_does_not_fit_integer() -> None:
    assert compatible(field(Words, "count"), field(Count, "count")) == "integer expected, string given"


def test_integer_fits_number_but_not_the_other_way() -> None:
    assert compatible(field(Count, "count"), field(Ratio, "count")) is None
    assert compatible(field(Ratio, "count"), field(Count, "count")) == "integer expected, number given"


def test_boolean_is_not_an_integer() -> None:
    assert compatible({"type": "boolean"}, {"type": "integer"}) == "integer expected, boolean given"


def test_list_of_str_does_not_fit_list_of_int() -> None:
    reason = compatible(field(Keywords, "keywords"), field(Numbers, "keywords"))
    assert reason == "items: integer expected, string given"
    assert compatible(field(Keywords, "keywords"), {"type": "array"}) is None
    assert compatible({"type": "array"}, field(Numbers, "keywords")) is None


def test_nested_models_with_refs_compare_field_by_field() -> None:
    assert compatible(field(Outer, "inner"), field(OuterWanted, "inner")) is None
    assert compatible(Outer.model_json_schema(), OuterWanted.model_json_schema()) is None
    wrong = {"type": "object", "properties": {"n": {"type": "string"}, "tags": {"type": "array"}}}
    assert compatible(wrong, field(OuterWanted, "inner")) == "n: integer expected, string given"
    deep = {
        "properties": {
            "inner": {"properties": {"n": {"type": "integer"}, "tags": {"items": {"type": "integer"}}}}
        }
    }
    assert compatible(deep, OuterWanted.model_json_schema()) == "inner.tags[]: string expected, integer given"


def test_a_missing_required_nested_field_is_named() -> None:
    assert (
        compatible({"type": "object", "properties": {}}, field(Outer, "inner"))
        == "field 'n' expected, not given"
    )


def test_a_forbidden_extra_field_is_named() -> None:
    assert (
        compatible(Loose.model_json_schema(), Strict.model_json_schema())
        == "field 'extra' given, not allowed"
    )
    assert (
        compatible(Strict.model_json_schema(), Loose.model_json_schema())
        == "field 'extra' expected, not given"
    )


def test_a_free_form_dict_is_checked_at_run_time() -> None:
    assert compatible({"type": "object"}, field(Outer, "inner")) is None
    dict_of_str = {"type": "object", "additionalProperties": {"type": "string"}}
    dict_of_int = {"type": "object", "additionalProperties": {"type": "integer"}}
    assert compatible(dict_of_str, dict_of_int) == "values: integer expected, string given"


def test_recursive_models_compare_without_looping() -> None:
    assert compatible(Tree.model_json_schema(), Tree.model_json_schema()) is None


def test_optional_accepts_its_type_and_null() -> None:
    optional = field(MaybeText, "text")
    assert compatible(field(Summary, "summary"), optional) is None
    assert compatible(optional, optional) is None
    assert compatible({"type": "null"}, optional) is None
    assert compatible({"type": "integer"}, optional) == "string or null expected, integer given"


def test_an_optional_output_does_not_fit_a_required_string() -> None:
    assert compatible(field(MaybeText, "text"), field(Text, "text")) == "string expected, null given"


def test_provided_any_of_must_fit_in_every_branch() -> None:
    either = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert compatible(either, {"type": "number"}) == "number expected, string given"
    assert compatible(either, {"type": ["integer", "string"]}) is None
    assert compatible({"oneOf": [{"type": "integer"}, {"type": "number"}]}, {"type": "number"}) is None


def test_literal_subset_fits_and_superset_does_not() -> None:
    assert compatible(field(Mood, "sentiment"), field(Sentiment, "sentiment")) is None
    reason = compatible(field(MoodOrMixed, "sentiment"), field(Sentiment, "sentiment"))
    assert reason == "one of 'positive', 'negative', 'neutral' expected, 'mixed' possible"


def test_a_literal_fits_its_base_type_and_a_plain_string_fits_no_literal() -> None:
    assert compatible(field(Sentiment, "sentiment"), field(Text, "text")) is None
    assert compatible({"const": "a"}, {"type": "string"}) is None
    assert compatible({"const": 3}, {"type": "string"}) == "string expected, 3 given"
    reason = compatible(field(Text, "text"), field(Sentiment, "sentiment"))
    assert reason == "one of 'positive', 'negative', 'neutral' expected, string given"


def test_json_true_is_not_the_number_one() -> None:
    assert compatible({"enum": [True]}, {"enum": [1, 2]}) == "one of 1, 2 expected, true possible"


def test_a_literal_into_an_optional_literal_picks_the_branch_that_explains() -> None:
    wanted = {"anyOf": [{"enum": ["a", "b"]}, {"type": "null"}]}
    assert compatible({"enum": ["a"]}, wanted) is None
    assert compatible({"enum": ["a", "z"]}, wanted) == "one of 'a', 'b' expected, 'z' possible"


def test_bounds_are_left_to_run_time() -> None:
    assert compatible(field(Text, "text"), field(Short, "text")) is None
    assert compatible(field(Keywords, "keywords"), {"type": "array", "maxItems": 1, "items": {}}) is None


def test_an_empty_or_untyped_schema_accepts_anything_and_is_given_the_benefit_of_the_doubt() -> None:
    assert compatible({"type": "integer"}, {}) is None
    assert compatible({"type": "integer"}, {"description": "anything"}) is None
    assert compatible(field(Anything, "text"), field(Text, "text")) is None
    assert compatible({}, field(Sentiment, "sentiment")) is None


def test_required_all_of_must_all_fit() -> None:
    wanted = {"allOf": [{"type": "number"}, {"type": "integer"}]}
    assert compatible({"type": "integer"}, wanted) is None
    assert compatible({"type": "number"}, wanted) == "integer expected, number given"


# -- check_inputs -------------------------------------------------------------------------------------


def test_fields_pass_by_name() -> None:
    sources = {"input": out(Text)}
    assert check_inputs("summarize", Text.model_json_schema(), sources) == {"text": "input.text"}


def test_a_string_into_an_integer_names_both_nodes() -> None:
    with pytest.raises(GraphError) as raised:
        check_inputs("count", Count.model_json_schema(), {"input": {}, "words": out(Words)})
    assert raised.value.where == "words -> count"
    assert raised.value.problem == (
        "output field 'count' of 'words' does not fit input field 'count' of 'count': "
        "integer expected, string given"
    )


def test_an_integer_into_a_float_is_fine() -> None:
    assert check_inputs("ratio", Ratio.model_json_schema(), {"counter": out(Count)}) == {
        "count": "counter.count"
    }


def test_a_list_of_str_into_a_list_of_int_is_an_error() -> None:
    with pytest.raises(GraphError, match=r"^keywords -> sum: .*items: integer expected, string given$"):
        check_inputs("sum", Numbers.model_json_schema(), {"keywords": out(Keywords)})


def test_a_nested_model_with_refs_flows() -> None:
    sources = {"build": out(Outer)}
    assert check_inputs("use", OuterWanted.model_json_schema(), sources) == {"inner": "build.inner"}


def test_an_optional_input_is_fed_or_left_out() -> None:
    assert check_inputs("maybe", MaybeText.model_json_schema(), {"input": {}}) == {}
    assert check_inputs("maybe", MaybeText.model_json_schema(), {"input": out(Text)}) == {
        "text": "input.text"
    }


def test_a_literal_subset_flows_and_a_superset_does_not() -> None:
    assert check_inputs("judge", Sentiment.model_json_schema(), {"mood": out(Mood)}) == {
        "sentiment": "mood.sentiment"
    }
    with pytest.raises(GraphError, match="'mixed' possible") as raised:
        check_inputs("judge", Sentiment.model_json_schema(), {"mood": out(MoodOrMixed)})
    assert raised.value.where == "mood -> judge"


def test_a_missing_required_field_names_it_and_suggests_a_mapping() -> None:
    with pytest.raises(GraphError) as raised:
        check_inputs(
            "summarize",
            Text.model_json_schema(),
            {"input": {"topic": {"type": "integer"}}, "extract": out(Summary)},
        )
    assert raised.value.where == "summarize"
    assert raised.value.problem == (
        "input field 'text' of node 'summarize' is not provided by input or extract: "
        "map it with inputs={'text': 'extract.summary'}"
    )


def test_a_missing_field_with_nothing_that_fits_says_so() -> None:
    with pytest.raises(GraphError, match="no field of theirs fits \\(integer\\)") as raised:
        check_inputs("count", Count.model_json_schema(), {"input": out(Text), "extract": out(Summary)})
    assert raised.value.where == "count"


def test_a_node_with_no_sources_says_nothing_feeds_it() -> None:
    with pytest.raises(GraphError, match="nothing feeds the node"):
        check_inputs("summarize", Text.model_json_schema(), {})


def test_an_explicit_mapping_comes_first() -> None:
    sources = {"input": out(Text), "extract": out(Summary)}
    assert check_inputs("summarize", Text.model_json_schema(), sources, {"text": "extract.summary"}) == {
        "text": "extract.summary"
    }


def test_a_mapping_is_type_checked() -> None:
    with pytest.raises(GraphError, match="integer expected, string given") as raised:
        check_inputs(
            "count", Count.model_json_schema(), {"extract": out(Summary)}, {"count": "extract.summary"}
        )
    assert raised.value.where == "extract -> count"


def test_a_mapping_may_name_a_source_with_dots() -> None:
    sources = {"input": {}, "text.extract": out(Summary)}
    mapped = check_inputs("summarize", Text.model_json_schema(), sources, {"text": "text.extract.summary"})
    assert mapped == {"text": "text.extract.summary"}


def test_a_mapping_from_an_unknown_source_is_an_error() -> None:
    with pytest.raises(GraphError) as raised:
        check_inputs("summarize", Text.model_json_schema(), {"input": out(Text)}, {"text": "nowhere.summary"})
    assert raised.value.where == "summarize"
    assert "'nowhere.summary', which names no source of node 'summarize'" in raised.value.problem
    assert "'input'" in raised.value.problem


def test_a_mapping_from_an_unknown_field_lists_the_fields() -> None:
    with pytest.raises(GraphError) as raised:
        check_inputs(
            "summarize", Text.model_json_schema(), {"extract": out(Summary)}, {"text": "extract.body"}
        )
    assert raised.value.where == "extract -> summarize"
    assert raised.value.problem.endswith("'extract' has no output field 'body': it has 'summary'")


def test_a_mapping_into_an_unknown_input_field_is_an_error() -> None:
    with pytest.raises(GraphError, match="node 'summarize' has no input field 'body': it takes 'text'"):
        check_inputs(
            "summarize", Text.model_json_schema(), {"extract": out(Summary)}, {"body": "extract.summary"}
        )


def test_a_free_form_input_takes_any_mapped_field() -> None:
    assert check_inputs("any", {}, {"extract": out(Summary)}, {"body": "extract.summary"}) == {
        "body": "extract.summary"
    }


def test_the_latest_source_with_the_field_wins() -> None:
    sources = {"input": out(Text), "clean": out(Text), "fix": out(Text)}
    assert check_inputs("summarize", Text.model_json_schema(), sources) == {"text": "fix.text"}


def test_the_latest_source_whose_field_fits_wins() -> None:
    sources = {"input": out(Count), "words": out(Words)}
    assert check_inputs("count", Count.model_json_schema(), sources) == {"count": "input.count"}


def test_the_result_follows_the_input_fields_order() -> None:
    class Two(BaseModel):
        first: str
        second: str

    sources = {"input": {"second": {"type": "string"}, "first": {"type": "string"}}}
    assert list(check_inputs("two", Two.model_json_schema(), sources, {"second": "input.first"})) == [
        "first",
        "second",
    ]
