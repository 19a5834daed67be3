import pytest

from detectors.keywords import KeywordRule, KeywordSpotter, KeywordSyntaxError, parse


@pytest.mark.parametrize("expr,text,hit", [
    ('"refund" AND NOT "cancel*"', "I want a refund please", True),
    ('"refund" AND NOT "cancel*"', "refund or I cancelled it", False),
    ("(price OR cost) AND quote", "what does it cost, can I get a quote", True),
    ("(price OR cost) AND quote", "what does it cost", False),
    ("tickets ANDNOT hockey AND basketball", "basketball tickets", True),
    ("tickets ANDNOT hockey AND basketball", "hockey and basketball tickets", False),
    ("ticket*", "two tickets", True),
    ("t?ck?t", "ticket", True),
    ("buy XOR refund", "buy it", True),
    ("buy XOR refund", "buy then refund", False),
    ('"credit card"', "pay by Credit Card", True),
    ('"credit card"', "card credit", False),
    ("NOT NOT yes", "yes", True),
    ("환불*", "환불요청 드립니다", True),
    ("price or cost", "COST", True),  # operators are case-insensitive
])
def test_rules(expr, text, hit):
    assert (KeywordRule("r", expr).match(text) is not None) is hit


def test_matched_terms_reported():
    ev = KeywordSpotter({"intent": "(buy OR purchase) AND \"credit card\""}).spot("I will buy with my credit card", 1.0, 2.0)
    assert len(ev) == 1 and ev[0].kind == "keyword"
    assert ev[0].details["terms"] == ['"credit card"', "buy"] and ev[0].start == 1.0


@pytest.mark.parametrize("expr,msg", [
    ("", "empty expression"),
    ("refund AND", "unexpected end"),
    ("(price OR cost", "missing ')'"),
    ("price OR cost)", "unbalanced ')'"),
    ("price cost", "expected an operator"),
    ('"refund', "unterminated quote"),
    ("AND refund", "expected a term"),
    ('""', "empty phrase"),
])
def test_malformed_expressions_give_clear_errors(expr, msg):
    with pytest.raises(KeywordSyntaxError) as ei:
        parse(expr)
    assert msg in str(ei.value) and "position" in str(ei.value)
