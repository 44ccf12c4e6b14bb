"""The ways news says a stored fact stopped holding (:func:`kbase.pipeline.changes.ends`),
and what does not count: a prospect, a denial, a change of something else."""

from __future__ import annotations

import pytest

from kbase.pipeline.changes import Rename, cue_names, ended_by, ends, renamed

ENDED = [
    # The holder, then a departure.
    ("Kestrel Falls Mayor Martin Oyelaran resigned on Monday, citing his health.",
     "Martin Oyelaran is the mayor of Kestrel Falls."),
    ("Elaine Brandt stepped down as superintendent of Lendmoor County Schools on Wednesday.",
     "Elaine Brandt is the superintendent of Lendmoor County Schools."),
    ("Councillor Abel Nakamura quit the Kestrel Falls council on Monday, saying a new job "
     "left him no time for Ward 3.",
     "Abel Nakamura represents Ward 3 on the Kestrel Falls council."),
    ("Renwick, 63, is retiring after 22 years at Halvorsen Foods.",
     "Paul Renwick is the chief financial officer of Halvorsen Foods."),
    ("Beatrix Olumide is no longer chief executive of Tidewater Grid.",
     "Beatrix Olumide is the chief executive of Tidewater Grid."),
    ("Fiona Reed handed the reins to her deputy on Monday after 15 years as chief executive "
     "of Mossbank Brewing.", "Fiona Reed is the chief executive of Mossbank Brewing."),
    ("Jonah Ekwueme has signed for Dunmere Rovers, ending six seasons with the Port Wenlow "
     "Harriers.", "Jonah Ekwueme plays for the Port Wenlow Harriers."),
    ("Nils Halvorsen was ousted as chief executive of Halvorsen Foods on Wednesday.",
     "Nils Halvorsen is the chief executive of Halvorsen Foods."),
    # A succession or removal, then the holder.
    ("Mei Ling Osei succeeds Paul Renwick as chief financial officer of Halvorsen Foods.",
     "Paul Renwick is the chief financial officer of Halvorsen Foods."),
    ("Dana Whitlock was sworn in as mayor of Kestrel Falls, succeeding acting mayor Priya "
     "Castellanos.", "Priya Castellanos is acting mayor of Kestrel Falls."),
    ("Ivo Stanek was appointed head coach, taking over from caretaker Kofi Ansah.",
     "Kofi Ansah is the caretaker coach of the Port Wenlow Harriers."),
    ("The Harriers sacked head coach Declan Fairweather on Monday.",
     "Declan Fairweather is the head coach of the Port Wenlow Harriers."),
    ("The police board named Sofia Marchetti to replace Ronan Abernathy as chief.",
     "Ronan Abernathy is the police chief of Kestrel Falls."),
    # The fact's value as the old one of a change.
    ("Brightline Ferries has cut its network to four routes from six.",
     "Brightline Ferries runs six routes."),
    ("The county's unemployment rate was 4.9 percent in April, down from 5.8 percent.",
     "The unemployment rate in Lendmoor County is 5.8 percent."),
    ("Corvane Systems moved its headquarters from Ashby Cross to Port Wenlow this week.",
     "Corvane Systems is headquartered in Ashby Cross."),
    # A figure of the same thing changed to another value.
    ("Kestrel Falls' 2024 budget was revised to 51.0 million euros on Monday.",
     "Kestrel Falls council adopted a 2024 budget of 48.2 million euros."),
    ("Petrol prices in Lendmoor County fell to 1.59 euros a litre.",
     "Petrol costs 1.71 euros a litre in Lendmoor County."),
    ("Kestrel Falls council trimmed the 2024 budget to 49.6 million euros on Tuesday.",
     "Kestrel Falls' 2024 budget was revised to 51.0 million euros."),
    # A change of state.
    ("The school board voted to make Tomasz Wierzbicki's appointment as superintendent "
     "permanent.", "Tomasz Wierzbicki is the interim superintendent of Lendmoor County Schools."),
    ("The Harbour Cinema closed its doors on Sunday after 52 years.",
     "The Harbour Cinema in Port Wenlow is showing films."),
    ("The Sallow Bridge is back open to traffic.", "The Sallow Bridge remains closed for repairs."),
    ("Ashby Cross council reversed its decision to close the Ferris Lane pool.",
     "The Ferris Lane pool will close at the end of June."),
    # A fact that names nothing is said of by its subject's noun.
    ("The Sallow Bridge is back open to traffic, seven months after inspectors found "
     "cracked bearings.", "The bridge is closed for repairs."),
    ("The Sallow Bridge is back open to traffic.", "The bridge has been shut since October."),
]  # fmt: skip

NOT_ENDED = [
    # Said of the future, or denied.
    ("Fiona Reed will step down next year.",
     "Fiona Reed is the chief executive of Mossbank Brewing."),
    ("Bob Marsh did not resign as chief executive of Acme.",
     "Bob Marsh is the chief executive of Acme."),
    # The successor, not the one replaced.
    ("Mei Ling Osei succeeds Paul Renwick as chief financial officer of Halvorsen Foods.",
     "Mei Ling Osei is the chief financial officer of Halvorsen Foods."),
    ("Fiona Reed handed the reins to her deputy Omar Haddad after 15 years as chief executive.",
     "Omar Haddad is the deputy chief executive of Mossbank Brewing."),
    # Another post of the one replaced.
    ("Dana Whitlock was sworn in as mayor, succeeding acting mayor Priya Castellanos, who "
     "returns to her seat as deputy mayor.",
     "Priya Castellanos is the deputy mayor of Kestrel Falls."),
    # The new value, not the old one.
    ("The county's unemployment rate was 4.9 percent in April, down from 5.8 percent.",
     "The unemployment rate in Lendmoor County is 4.9 percent."),
    # A change of something else of the same subject.
    ("Corvane Systems moved its headquarters from Ashby Cross to Port Wenlow.",
     "Corvane Systems makes routing software."),
    ("Acme Robotics closed its Leeds plant.", "Acme Robotics is headquartered in Sheffield."),
    ("Sales at Mossbank Brewing rose to 5 million euros.",
     "Fiona Reed is the chief executive of Mossbank Brewing."),
    ("Ivo Stanek was appointed head coach, taking over from caretaker Kofi Ansah.",
     "The Port Wenlow Harriers play at Quayside Park."),
    ("The school board voted to make Tomasz Wierzbicki's appointment as superintendent "
     "permanent.", "Tomasz Wierzbicki taught mathematics in Kestrel Falls for 12 years."),
    ("Kestrel Falls council trimmed the 2024 budget to 49.6 million euros on Tuesday.",
     "Kestrel Falls council trimmed the 2024 budget to 49.6 million euros."),
    # A departure said of another name of the sentence.
    ("Kestrel Falls Mayor Martin Oyelaran resigned on Monday, citing his health.",
     "Kestrel Falls has about 24,000 residents."),
    ("Kestrel Falls' Harbour Cinema closed its doors on Sunday.",
     "Kestrel Falls is the county town of Lendmoor County."),
    # An appointment by the holder is not the holder leaving.
    ("Mayor Dana Whitlock named a new police chief on Tuesday.",
     "Dana Whitlock is the mayor of Kestrel Falls."),
    # ... and not by a noun alone where the change is said of another name.
    ("The club sacked head coach Declan Fairweather on Monday.",
     "The club is second from bottom with ten matches left."),
    ("The Sallow Bridge is back open to traffic.", "The bridge has four lanes."),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "fact"), ENDED)
def test_a_sentence_that_says_the_fact_stopped_holding_ends_it(sentence: str, fact: str) -> None:
    assert ends(sentence, fact)


@pytest.mark.parametrize(("sentence", "fact"), NOT_ENDED)
def test_a_prospect_a_denial_or_another_change_ends_nothing(sentence: str, fact: str) -> None:
    assert not ends(sentence, fact)


def test_the_sentence_that_ends_a_fact_is_found_among_the_lines() -> None:
    fact = "Elaine Brandt is the superintendent of Lendmoor County Schools."
    body = "Teachers praised her for keeping class sizes down."
    title = "Elaine Brandt steps down as superintendent"
    assert ended_by([body, title], fact) == title
    assert ended_by([body], fact) is None


RENAMES = [
    ("Quayside Park, home of the Port Wenlow Harriers since 1961, has been renamed the "
     "Brightline Arena under a ten-year deal with Brightline Ferries.",
     Rename("Quayside Park", "Brightline Arena")),
    ("Lendmoor Mutual, the savings bank based in Dunmere, will now be known as Northreach "
     "Bank, it said on Monday.", Rename("Lendmoor Mutual", "Northreach Bank")),
    ("Lendmoor Mutual becomes Northreach Bank", Rename("Lendmoor Mutual", "Northreach Bank")),
]  # fmt: skip
NOT_RENAMES = [
    "Priya Castellanos becomes acting mayor of Kestrel Falls.",  # a post, not a name
    "Quayside Park will be renamed the Brightline Arena next year.",  # not yet
    "Lendmoor Mutual became a partner of Northreach Bank.",  # the new name must follow
]


@pytest.mark.parametrize(("sentence", "rename"), RENAMES)
def test_a_rename_is_the_first_name_then_a_rename_cue_then_the_new_name(
    sentence: str, rename: Rename
) -> None:
    assert renamed(sentence) == rename


@pytest.mark.parametrize("sentence", NOT_RENAMES)
def test_what_is_not_a_rename_done(sentence: str) -> None:
    assert renamed(sentence) is None


def test_a_sentence_with_a_change_cue_gives_its_names_of_several_words_to_look_up() -> None:
    sentence = (
        "Ivo Stanek was appointed head coach of the Port Wenlow Harriers on Monday, taking "
        "over from caretaker Kofi Ansah."
    )
    assert cue_names(sentence) == ["Ivo Stanek", "Port Wenlow Harriers", "Kofi Ansah"]
    assert cue_names("Kofi Ansah watched from the stand on Monday.") == []  # no change
    assert cue_names("Stanek took over from Ansah.") == []  # one word names too much


# Seen in the realistic run: facts looked up by a name the cue was not said of.
NOT_SAID_OF = [
    ("Whitlock & Sons, the hardware shop on Market Street in Kestrel Falls, will close at "
     "the end of June after 70 years.", "Sofia Marchetti is the police chief of Kestrel Falls."),
    ("The Sallow Bridge between Kestrel Falls and Ashby Cross remains closed for repairs.",
     "Corvane Systems is based in Ashby Cross."),
    ("Nils Halvorsen was ousted as chief executive of Halvorsen Foods on Wednesday.",
     "Halvorsen Foods said sales rose 6 percent last year."),
    ("Corvane Systems moved its headquarters from Ashby Cross to Port Wenlow this week.",
     "Ashby Cross is a college town."),
    ("The company would run a free bus from Kestrel Falls for workers without a car.",
     "The Kestrel Falls Otters won the league final."),
]  # fmt: skip


@pytest.mark.parametrize(("sentence", "fact"), NOT_SAID_OF)
def test_a_cue_is_said_of_its_own_name_not_of_a_place_or_a_namesake(
    sentence: str, fact: str
) -> None:
    assert not ends(sentence, fact)
