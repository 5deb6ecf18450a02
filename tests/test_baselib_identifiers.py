"""Identifiers of the base libraries (issue 15 §1): published valid and invalid examples of
GB 11643 (公民身份号码) and GB 32100 (统一社会信用代码), full-width input, 15-digit upgrade,
historical region codes as warnings, the embedded organisation code as a warning."""

from __future__ import annotations

from datetime import date

import pytest

from layers.identifiers import (
    check_ric,
    check_uscc,
    make_ric,
    make_uscc,
    region_status,
    upgrade15,
)

# GB 11643-1999's own example (附录) and stdnum's documented example
VALID_RIC = ["11010519491231002X", "360426199101010071"]
# GB 32100 examples as published (stdnum's doc example; zh.wikipedia 统一社会信用代码)
VALID_USCC = ["91110000600037341L", "91350100M000100Y43"]


@pytest.mark.parametrize("number", VALID_RIC)
def test_published_valid_ric(number):
    v = check_ric(number)
    assert v.ok and v.value == number and not v.warnings


def _with_check(first17: str) -> str:
    from layers.identifiers import ric_check_char

    return first17 + ric_check_char(first17)


@pytest.mark.parametrize(("raw", "needle"), [
    ("110105194912310021", "check character"),   # last character altered
    ("360426199101010072", "expected '1'"),
    ("11010519491231002", "not 17"),             # one short
    ("1101051949123100AX", "17 digits"),
    (_with_check("11010519490231002"), "does not exist"),  # 1949-02-31
    (_with_check("99999919900101000"), "unknown region code 999999"),
    ("", "empty"),
])
def test_invalid_ric_have_a_reason(raw, needle):
    v = check_ric(raw)
    assert not v.ok and needle in v.reason and " / " in v.reason


def test_full_width_lower_x_and_spaces_normalise():
    for raw in ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002x", " 110105 1949 1231 002x "):
        v = check_ric(raw)
        assert v.ok and v.value == "11010519491231002X", raw
    v = check_uscc("９１１１００００６０００３７３４１ｌ")
    assert v.ok and v.value == "91110000600037341L"


def test_15_digit_upgraded_to_18():
    # GB 11643's example pair: 110105491231002 → 11010519491231002X
    assert upgrade15("110105491231002") == "11010519491231002X"
    v = check_ric("110105491231002")
    assert v.ok and v.value == "11010519491231002X" and "upgraded" in v.warnings[0]


def test_historical_region_code_is_a_warning_not_a_refusal():
    assert region_status("440722")[0] == "historical"  # 台山县 until 1992
    assert region_status("440781") == ("current", "台山市")
    v = check_ric(make_ric("440722", date(1980, 5, 6), 31))
    assert v.ok and "historical region code 440722" in v.warnings[0]
    # 蓬江区 (440703) exists from 1994: someone born before then with a later number is
    # valid (stdnum's own validate refuses this)
    v = check_ric(make_ric("440703", date(1988, 3, 4), 17))
    assert v.ok and not v.warnings


def test_future_birth_date_refused():
    v = check_ric(make_ric("440703", date(2099, 1, 1), 1), today=date(2026, 1, 1))
    assert not v.ok and "impossible" in v.reason


@pytest.mark.parametrize("code", VALID_USCC)
def test_published_valid_uscc(code):
    v = check_uscc(code)
    assert v.ok and v.value == code and not v.warnings


@pytest.mark.parametrize(("raw", "needle"), [
    ("91110000600037341M", "expected 'L'"),
    ("9111000060003734", "not 16"),
    ("91110000600O37341L", "'O'"),
    ("A1110000600037341L", "digits"),
    (None, "empty"),
])
def test_invalid_uscc_have_a_reason(raw, needle):
    v = check_uscc(raw)
    assert not v.ok and needle in v.reason


def test_embedded_organisation_code_mismatch_is_a_warning():
    good = make_uscc("91", "440703", "MA4UH7K2")
    assert check_uscc(good).ok and not check_uscc(good).warnings
    from stdnum.cn import uscc

    bad17 = good[:16] + ("0" if good[16] != "0" else "1")
    code = bad17 + uscc.calc_check_digit(bad17 + "0")
    v = check_uscc(code)
    assert v.ok and "organisation code" in v.warnings[0]


def test_department_codes_refuse_the_organisation_code_mismatch():
    """A department the platform registers must have a clean code (layers.departments)."""
    from stdnum.cn import uscc

    from layers.departments import InvalidUSCC, validate_uscc

    good = make_uscc("11", "440700", "00701001")
    assert validate_uscc(good.lower()) == good
    bad17 = good[:16] + ("0" if good[16] != "0" else "1")
    with pytest.raises(InvalidUSCC, match="organisation code"):
        validate_uscc(bad17 + uscc.calc_check_digit(bad17 + "0"))
