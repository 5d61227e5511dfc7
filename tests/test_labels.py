import pytest

from autospecnet.labels import (
    BODY_TYPE_BY_NAME,
    BODY_TYPES,
    LabelError,
    Taxonomy,
    parse_class_name,
    read_class_names,
)


def test_all_196_names_parse_into_documented_vocabularies():
    names = read_class_names()
    assert len(names) == 196
    labels = [parse_class_name(n) for n in names]
    assert {label.body_type for label in labels} == set(BODY_TYPES)
    for label in labels:
        assert label.name.startswith(label.make + " ")
        assert label.name.endswith(" " + label.year)
        assert label.model and label.model in label.name


def test_bundled_class_list_matches_the_dataset(shared_data):
    assert read_class_names() == read_class_names(shared_data / "class_names.txt")


def test_vocabularies_are_sorted_and_stable():
    taxonomy = Taxonomy.from_class_names(read_class_names())
    assert list(taxonomy.years) == sorted(taxonomy.years)
    assert list(taxonomy.makes) == sorted(taxonomy.makes, key=str.casefold)
    assert taxonomy.body_types == BODY_TYPES
    assert (len(taxonomy.years), len(taxonomy.makes), len(taxonomy.body_types)) == (16, 49, 9)
    shuffled = Taxonomy.from_class_names(list(reversed(read_class_names())))
    assert (shuffled.years, shuffled.makes, shuffled.body_types) == (
        taxonomy.years,
        taxonomy.makes,
        taxonomy.body_types,
    )


@pytest.mark.parametrize(
    "name, make, model, body_type, year",
    [
        ("Aston Martin V8 Vantage Convertible 2012", "Aston Martin", "V8 Vantage", "Convertible", "2012"),
        ("AM General Hummer SUV 2000", "AM General", "Hummer", "SUV", "2000"),
        ("Land Rover Range Rover SUV 2012", "Land Rover", "Range Rover", "SUV", "2012"),
        (
            "Rolls-Royce Phantom Drophead Coupe Convertible 2012",
            "Rolls-Royce",
            "Phantom Drophead Coupe",
            "Convertible",
            "2012",
        ),
        ("Mercedes-Benz 300-Class Convertible 1993", "Mercedes-Benz", "300-Class", "Convertible", "1993"),
        ("Acura Integra Type R 2001", "Acura", "Integra Type R", "Coupe", "2001"),
        ("Acura TL Type-S 2008", "Acura", "TL Type-S", "Sedan", "2008"),
        ("Dodge Challenger SRT8 2011", "Dodge", "Challenger SRT8", "Coupe", "2011"),
        ("Chrysler 300 SRT-8 2010", "Chrysler", "300 SRT-8", "Sedan", "2010"),
        ("Chevrolet Corvette ZR1 2012", "Chevrolet", "Corvette ZR1", "Coupe", "2012"),
        (
            "Chevrolet Corvette Ron Fellows Edition Z06 2007",
            "Chevrolet",
            "Corvette Ron Fellows Edition Z06",
            "Coupe",
            "2007",
        ),
        ("Chevrolet Corvette Convertible 2012", "Chevrolet", "Corvette", "Convertible", "2012"),
        ("Infiniti G Coupe IPL 2012", "Infiniti", "G Coupe IPL", "Coupe", "2012"),
        ("Chevrolet Express Cargo Van 2007", "Chevrolet", "Express Cargo", "Van", "2007"),
        ("Ram C/V Cargo Van Minivan 2012", "Ram", "C/V Cargo Van", "Minivan", "2012"),
        ("Ford F-150 Regular Cab 2012", "Ford", "F-150 Regular Cab", "Pickup", "2012"),
        ("Ford Ranger SuperCab 2011", "Ford", "Ranger SuperCab", "Pickup", "2011"),
        ("Dodge Ram Pickup 3500 Crew Cab 2010", "Dodge", "Ram Pickup 3500 Crew Cab", "Pickup", "2010"),
        ("HUMMER H2 SUT Crew Cab 2009", "HUMMER", "H2 SUT Crew Cab", "Pickup", "2009"),
        ("FIAT 500 Abarth 2012", "FIAT", "500 Abarth", "Hatchback", "2012"),
        ("smart fortwo Convertible 2012", "smart", "fortwo", "Convertible", "2012"),
    ],
)
def test_hard_names(name, make, model, body_type, year):
    label = parse_class_name(name)
    assert (label.make, label.model, label.body_type, label.year) == (make, model, body_type, year)


def test_answer_reads_year_first():
    assert parse_class_name("BMW M3 Coupe 2012").answer == "2012 BMW M3 Coupe"


def test_every_table_entry_is_a_real_class_and_a_known_type():
    names = set(read_class_names())
    assert set(BODY_TYPE_BY_NAME) <= names
    assert set(BODY_TYPE_BY_NAME.values()) <= set(BODY_TYPES)


@pytest.mark.parametrize(
    "name, reason",
    [
        ("BMW M3 Coupe", "year"),
        ("Tesla Roadster 2008", "body type"),
        ("Coupe 2012", "expected"),
        ("Aston Martin 2012", "no model"),
        ("Ford Sedan 2012", "body type"),
        ("Audi A4 Sedan 12", "year"),
    ],
)
def test_unrecognisable_names_raise_instead_of_guessing(name, reason):
    with pytest.raises(LabelError, match=reason):
        parse_class_name(name)


def test_duplicate_class_names_are_refused():
    with pytest.raises(LabelError, match="unique"):
        Taxonomy.from_class_names(["BMW M3 Coupe 2012", "BMW M3 Coupe 2012"])


def test_head_targets_point_at_each_class_attributes():
    taxonomy = Taxonomy.from_class_names(read_class_names())
    targets = taxonomy.head_targets()
    index = taxonomy.class_names.index("Dodge Challenger SRT8 2011")
    assert taxonomy.years[targets["year"][index]] == "2011"
    assert taxonomy.makes[targets["make"][index]] == "Dodge"
    assert taxonomy.body_types[targets["type"][index]] == "Coupe"
