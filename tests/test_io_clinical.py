"""A user points the tool at the HCC-TACE-Seg clinical table (XLSX or a CSV export of it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_livertumor.errors import InputError
from napari_livertumor.io.clinical import normalise_id, read_clinical

ROWS = {
    "TCIA_ID": ["HCC_001", "HCC_002", "hcc_3", "HCC_004"],
    "age": [61, 55, "", 70],
    "Sex": ["M", "F", "M", "M"],
    "T_involvment": ["< or = 50%", ">50%", "<or=50%", "about half"],
    "CLIP_Score": ["Stage_0", "Stage_3", "Stage_6", None],
    "TNM": ["Stage-I", "Stage-IIIB", "Stage-IVB", "Stage-II"],
    "Metastasis": [0, 1, "yes", "no"],
    "AFP": [12.5, 4000, 3.1, 88],
    "Pathology": ["Well differentiated", "Moderately", "Poorly", "Well"],
    "BCLC": ["A", "Stage-C", "0", "D"],
    "Okuda": ["Stage I", "Stage II", "Stage III", "I"],
}


def write_xlsx(path, frame: pd.DataFrame, sheet="data table"):
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["readme"]}).to_excel(writer, sheet_name="notes", index=False)
        frame.to_excel(writer, sheet_name=sheet, index=False)


def test_xlsx_data_table_is_encoded_by_the_original_codes(tmp_path):
    write_xlsx(tmp_path / "clinical.xlsx", pd.DataFrame(ROWS))
    table = read_clinical(tmp_path / "clinical.xlsx")
    f = table.frame
    assert list(f.index) == ["HCC_001", "HCC_002", "HCC_003", "HCC_004"]
    assert f["T_involvment"].tolist()[:3] == [1.0, 2.0, 1.0]
    assert f["CLIP_Score"].tolist()[:3] == [0.0, 3.0, 6.0]
    assert f["TNM"].tolist() == [1.0, 4.0, 7.0, 2.0]
    assert f["Metastasis"].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert f["Sex"].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert f.loc["HCC_002", "AFP"] == 4000
    assert f["BCLC"].tolist() == [1.0, 3.0, 0.0, 4.0]
    assert f["Okuda"].tolist() == [1.0, 2.0, 3.0, 1.0]
    assert np.isnan(f.loc["HCC_003", "age"])
    text = "\n".join(table.report)
    assert "T_involvment: unknown value(s) HCC_004 'about half'" in text
    assert "CLIP_Score (1)" in text and "age (1)" in text
    assert "Pathology" in text and "Pathology" not in f.columns
    assert table.row("hcc-2")["TNM"] == 4.0


def test_csv_export_reads_the_same_as_the_workbook(tmp_path):
    frame = pd.DataFrame(ROWS)
    write_xlsx(tmp_path / "clinical.xlsx", frame)
    frame.to_csv(tmp_path / "clinical.csv", index=False, sep=";", encoding="cp1252")
    from_xlsx = read_clinical(tmp_path / "clinical.xlsx").frame
    from_csv = read_clinical(tmp_path / "clinical.csv").frame
    pd.testing.assert_frame_equal(from_xlsx, from_csv)


def test_a_utf16_text_export_reads_the_same_as_the_workbook(tmp_path):
    """Excel's "Unicode text" export is UTF-16: it was decoded as cp1252 and refused with a
    column list of "ÿþT C I A _ I D"."""
    frame = pd.DataFrame(ROWS)
    write_xlsx(tmp_path / "clinical.xlsx", frame)
    frame.to_csv(tmp_path / "clinical.txt", index=False, sep="\t", encoding="utf-16")
    from_xlsx = read_clinical(tmp_path / "clinical.xlsx").frame
    pd.testing.assert_frame_equal(from_xlsx, read_clinical(tmp_path / "clinical.txt").frame)


def test_workbook_without_the_data_table_sheet_uses_the_one_with_the_ids_and_says_so(tmp_path):
    pd.DataFrame(ROWS).to_excel(tmp_path / "c.xlsx", sheet_name="Sheet1", index=False)
    table = read_clinical(tmp_path / "c.xlsx")
    assert len(table.frame) == 4
    assert any("read the sheet 'Sheet1'" in r for r in table.report)
    # a README sheet first: the table was refused for having no TCIA_ID column, naming neither
    # the sheet read nor the others
    with pd.ExcelWriter(tmp_path / "d.xlsx") as book:
        pd.DataFrame({"Clinical data of HCC-TACE-Seg": ["see the other sheet"]}).to_excel(
            book, sheet_name="README", index=False
        )
        pd.DataFrame(ROWS).to_excel(book, sheet_name="patients", index=False)
    table = read_clinical(tmp_path / "d.xlsx")
    assert len(table.frame) == 4
    assert any("read the sheet 'patients' (not 'README')" in r for r in table.report)
    # ... nor a data dictionary listing TCIA_ID among the variables
    with pd.ExcelWriter(tmp_path / "e.xlsx") as book:
        pd.DataFrame(
            {"Variable": ["TCIA_ID", "AFP", "age"], "Description": ["patient", "ng/mL", "years"]}
        ).to_excel(book, sheet_name="Data dictionary", index=False)
        pd.DataFrame(ROWS).to_excel(book, sheet_name="patients", index=False)
    table = read_clinical(tmp_path / "e.xlsx")
    assert len(table.frame) == 4
    assert any("read the sheet 'patients'" in r for r in table.report)


def test_a_file_named_xlsx_that_is_no_workbook_says_so_in_plain_words(tmp_path):
    (tmp_path / "junk.xlsx").write_text("not a workbook at all")
    with pytest.raises(InputError, match="is not an Excel workbook: it holds text") as info:
        read_clinical(tmp_path / "junk.xlsx")
    assert "save it again from the spreadsheet as .xlsx or .csv" in str(info.value)
    # a damaged workbook (a ZIP, not one of a workbook): pandas' words, on one line
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(InputError, match="is not an Excel workbook that can be read") as info:
        read_clinical(tmp_path / "broken.xlsx")
    assert "\n" not in str(info.value)


def test_a_workbook_locked_by_another_program_says_it_may_be_open_there(tmp_path, monkeypatch):
    """A workbook open in Excel on Windows is locked against reading: the message said only
    "cannot be read as a table (PermissionError: [Errno 13] Permission denied …)", which sent
    the user to the file's permissions."""
    write_xlsx(tmp_path / "clinical.xlsx", pd.DataFrame(ROWS))

    def locked(path, *args, **kw):  # what Windows answers while Excel has the file open
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_excel", locked)
    with pytest.raises(InputError, match=r"PermissionError: \[Errno 13\]") as info:
        read_clinical(tmp_path / "clinical.xlsx")
    assert "is it open in another program, such as Excel?" in str(info.value)


def test_title_rows_above_the_header_are_skipped(tmp_path):
    body = pd.DataFrame(ROWS)
    lines = ["HCC-TACE-Seg clinical data", "", ",".join(body.columns)]
    lines += [",".join("" if v is None else str(v) for v in row) for row in body.values]
    (tmp_path / "c.csv").write_text("\n".join(lines))
    assert len(read_clinical(tmp_path / "c.csv").frame) == 4


def test_table_without_tcia_id_is_refused_by_name(tmp_path):
    pd.DataFrame({"patient": ["a"], "age": [3]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(InputError, match="no TCIA_ID column") as info:
        read_clinical(tmp_path / "c.csv")
    assert info.value.path == tmp_path / "c.csv"


def test_duplicate_patients_keep_the_first_row(tmp_path):
    pd.DataFrame({"TCIA_ID": ["HCC_001", "HCC_001"], "age": [50, 60]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    table = read_clinical(tmp_path / "c.csv")
    assert table.frame["age"].tolist() == [50.0]
    # rows that disagree: a warning naming the patient and the columns (it was an INFO line)
    (note,) = [r for r in table.report if "HCC_001" in r]
    assert note.startswith("WARNING: HCC_001 has 2 rows that differ in age: kept the first")


def test_identical_duplicate_rows_are_a_note_not_a_warning(tmp_path):
    pd.DataFrame({"TCIA_ID": ["HCC_001", " HCC_001", "HCC_002"], "age": [50, 50, 70]}).to_csv(
        tmp_path / "c.csv", index=False
    )
    table = read_clinical(tmp_path / "c.csv")
    assert table.frame["age"].tolist() == [50.0, 70.0]
    assert any("identical rows" in r for r in table.report)
    assert not any(r.startswith("WARNING") for r in table.report)


def test_implausible_numbers_are_reported_and_treated_as_missing(tmp_path):
    pd.DataFrame(
        {"TCIA_ID": ["HCC_001", "HCC_002", "HCC_003"], "age": [-5, 300, 64], "AFP": [-1, 20, 7]}
    ).to_csv(tmp_path / "c.csv", index=False)
    table = read_clinical(tmp_path / "c.csv")
    assert np.isnan(table.frame["age"].iloc[0]) and np.isnan(table.frame["age"].iloc[1])
    assert table.frame["age"].iloc[2] == 64.0 and table.frame["AFP"].tolist()[1:] == [20.0, 7.0]
    text = " ".join(table.report)
    assert "age: HCC_001 -5, HCC_002 300 outside the plausible 1–120 years" in text
    assert "AFP: HCC_001 -1 outside the plausible 0–1e7 ng/mL" in text


def test_unsupported_file_is_refused(tmp_path):
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(InputError, match="unsupported table format"):
        read_clinical(tmp_path / "c.json")


def test_patient_ids_are_normalised():
    assert [normalise_id(v) for v in ("hcc_1", "HCC-010 ", "HCC105", "X_1")] == [
        "HCC_001",
        "HCC_010",
        "HCC_105",
        "X_1",
    ]


def test_a_folder_given_as_the_table_says_it_is_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_clinical(tmp_path)


def test_numbers_are_read_with_their_columns_decimal_mark(tmp_path):
    """'1,234' in an English sheet was read as 1.234: an AFP a thousand times too small."""
    rows = {
        "TCIA_ID": ["HCC_001", "HCC_002", "HCC_003"],
        "AFP": ["1,234", "12.5", 7],
        "age": ["61", "55", "70"],
    }
    write_xlsx(tmp_path / "clinical.xlsx", pd.DataFrame(rows))
    table = read_clinical(tmp_path / "clinical.xlsx")
    assert table.frame["AFP"].tolist() == [1234.0, 12.5, 7.0]
    assert any("AFP: HCC_001 '1,234' read with ',' as a thousands" in r for r in table.report)
    # a European export: decimal commas, thousands with a point
    europe = {"TCIA_ID": ["HCC_001", "HCC_002"], "AFP": ["1.234", "12,5"], "age": ["61", "55"]}
    pd.DataFrame(europe).to_csv(tmp_path / "eu.csv", index=False, sep=";", encoding="cp1252")
    assert read_clinical(tmp_path / "eu.csv").frame["AFP"].tolist() == [1234.0, 12.5]


def test_a_notes_row_under_the_table_is_no_patient(tmp_path):
    rows = {
        "TCIA_ID": ["HCC_001", "HCC_002", "Note: AFP in ng/mL, measured at baseline"],
        "AFP": [12.5, 40, None],
        "age": [61, 55, None],
    }
    write_xlsx(tmp_path / "clinical.xlsx", pd.DataFrame(rows))
    table = read_clinical(tmp_path / "clinical.xlsx")
    assert list(table.frame.index) == ["HCC_001", "HCC_002"]
    assert any("text in TCIA_ID and no data dropped" in r for r in table.report)


def test_a_column_with_both_decimal_marks_reads_each_cell_by_its_own_and_warns(tmp_path):
    """One '1,5' among '0.9' and '14.6' made the whole column's decimal mark a comma: '1.234'
    became 1234 and '16.000' 16000, said only as a note."""
    rows = {
        "TCIA_ID": [f"HCC_00{i}" for i in range(1, 7)],
        "AFP": ["0.9", "14.6", "16.000", "1,5", "1.234", "250"],
    }
    pd.DataFrame(rows).to_csv(tmp_path / "mixed.csv", index=False)
    table = read_clinical(tmp_path / "mixed.csv")
    assert table.frame["AFP"].tolist() == [0.9, 14.6, 16.0, 1.5, 1.234, 250.0]
    [said] = [r for r in table.report if "decimal marks differ" in r]
    assert said.startswith("WARNING: AFP:") and "'1,5'" in said


def test_two_columns_named_alike_but_for_spaces_keep_the_first_and_say_so(tmp_path):
    """'AFP' and 'AFP ' (a stray space in a header) became one name: the variable read as the
    column names themselves ("unknown value 'AFP'") and dropped out of the weak fit."""
    table = tmp_path / "clinical.csv"
    table.write_text("TCIA_ID,AFP,AFP ,age\nHCC_001,10,20,50\nHCC_002,30,40,60\n")
    got = read_clinical(table)
    assert got.frame["AFP"].tolist() == [10.0, 30.0]
    assert any("'AFP' appear more than once" in line for line in got.report)
    assert not any("unknown value" in line for line in got.report)


def test_a_lab_value_given_as_a_bound_is_read_as_that_bound_and_said(tmp_path):
    """'>400' and '<5' are ordinary lab results: they were "unknown" and the weak label used the
    column's median (about 16) for an AFP of at least 400."""
    frame = pd.DataFrame({"TCIA_ID": ["HCC_001", "HCC_002", "HCC_003"], "AFP": [">400", "<5", 12]})
    frame.to_csv(tmp_path / "clinical.csv", index=False)
    table = read_clinical(tmp_path / "clinical.csv")
    assert table.frame["AFP"].tolist() == [400.0, 5.0, 12.0]
    # each patient beside the cell, as the other notes name them
    said = "AFP: HCC_001 '>400', HCC_002 '<5' read as the limit each gives"
    assert any(said in line for line in table.report)


def test_a_dash_or_none_in_a_yes_no_column_is_no_answer_in_any_case(tmp_path):
    csv = tmp_path / "clinical.csv"
    csv.write_text(
        "TCIA_ID,Metastasis,Smoking\nHCC_001,-,1\nHCC_002,none,0\nHCC_003,no,-\n"
        "HCC_004,None,NONE\nHCC_005,maybe,yes\n"
    )
    table = read_clinical(csv)
    f = table.frame
    # no value, as a blank or "None" (pandas' word) is: never counted as No
    assert f["Metastasis"].isna().tolist() == [True, True, False, True, True]
    assert f.loc["HCC_003", "Metastasis"] == 0.0 and f.loc["HCC_002", "Smoking"] == 0.0
    text = "\n".join(table.report)
    assert "missing values: Metastasis (4), Smoking (2)" in text
    # a word that is no answer is listed, each patient beside its own cell
    assert "Metastasis: unknown value(s) HCC_005 'maybe' treated as missing" in text
    assert "'-'" not in text and "'none'" not in text


def test_a_value_that_could_be_thousands_read_as_a_decimal_is_warned_of(tmp_path):
    csv = tmp_path / "clinical.csv"
    # one '2,5' decides the column's decimal comma: '1,234' and '16,000' are then 1.234 and
    # 16, and that is said
    csv.write_text('TCIA_ID,AFP\nHCC_001,"2,5"\nHCC_002,"16,000"\nHCC_003,"1,234"\n')
    table = read_clinical(csv)
    assert table.frame.loc["HCC_002", "AFP"] == 16.0
    text = "\n".join(table.report)
    assert "WARNING: AFP: HCC_002 '16,000', HCC_003 '1,234' read with ',' as the decimal" in text
    assert "write them without the ','" in text


def test_a_column_without_a_decimal_mark_takes_the_tables_or_the_separators(tmp_path):
    european = tmp_path / "eu.csv"  # decimal commas in another column: AFP's 1.234 is 1234
    european.write_text("\ufeffTCIA_ID;AFP;TTP\nHCC_001;1.234;12,5\nHCC_002;47;3,1\n")
    table = read_clinical(european)
    assert table.frame.loc["HCC_001", "AFP"] == 1234.0
    assert table.frame.loc["HCC_001", "TTP"] == 12.5
    assert "the table's other numbers use it" in "\n".join(table.report)
    semicolons = tmp_path / "semi.csv"  # nothing shows the mark; the separator hints a comma
    semicolons.write_text("TCIA_ID;AFP\nHCC_001;1.234\nHCC_002;47\n")
    table = read_clinical(semicolons)
    assert table.frame.loc["HCC_001", "AFP"] == 1234.0
    assert "separated by semicolons" in "\n".join(table.report)
    commas = tmp_path / "en.csv"  # an English export with nothing to go by: a point, said
    commas.write_text("TCIA_ID,AFP\nHCC_001,1.234\nHCC_002,47\n")
    table = read_clinical(commas)
    assert table.frame.loc["HCC_001", "AFP"] == 1.234
    said = "WARNING: AFP: HCC_001 '1.234' read with '.' as the decimal mark"
    assert said in "\n".join(table.report)


def test_known_columns_spelt_otherwise_are_read_under_their_usual_names(tmp_path):
    frame = pd.DataFrame(
        {
            "TCIA_ID": ["HCC_001", "HCC_002"],
            "T_involvement": ["> 50%", "1.0"],
            "CLIP Score": ["Stage_2", "Stage_0"],
            "Personal_history_of_cancer": ["yes", "no"],
            "AFP (ng/mL)": [12.5, 400],
            "CLIP": [2, 0],
        }
    )
    path = tmp_path / "clinical.xlsx"
    write_xlsx(path, frame)
    table = read_clinical(path)
    f = table.frame
    assert f["T_involvment"].tolist() == [2.0, 1.0]
    assert f["CLIP_Score"].tolist() == [2.0, 0.0]
    assert f["Personal history of cancer"].tolist() == [1.0, 0.0]
    assert f["AFP"].tolist() == [12.5, 400.0]
    assert f["CLIP"].tolist() == [2.0, 0.0]  # CLIP and CLIP_Score stay two columns
    text = "\n".join(table.report)
    assert "'T_involvement' as 'T_involvment'" in text and "'CLIP Score' as 'CLIP_Score'" in text


def test_a_known_name_already_in_the_table_is_not_taken_twice(tmp_path):
    csv = tmp_path / "clinical.csv"
    csv.write_text("TCIA_ID,T_involvment,T_involvement\nHCC_001,>50%,1\n")
    table = read_clinical(csv)
    assert table.frame.loc["HCC_001", "T_involvment"] == 2.0
    assert "T_involvement" in table.raw.columns


def test_a_leading_zero_never_starts_a_thousands_group(tmp_path):
    csv = tmp_path / "clinical.csv"  # a ';' CSV: a comma is the guess, but 0.500 is a decimal
    csv.write_text("TCIA_ID;age;AFP\nHCC_001;60;0.500\nHCC_002;70;16\n")
    table = read_clinical(csv)
    assert table.frame.loc["HCC_001", "AFP"] == 0.5
    assert "thousands" not in "\n".join(table.report)


def test_words_in_brackets_that_are_no_unit_keep_a_header_apart(tmp_path):
    csv = tmp_path / "clinical.csv"
    csv.write_text(
        "TCIA_ID,TTP (censored),AFP (>=400),Alcohol (units/week),age [years]\n"
        "HCC_001,1,1,14,61\nHCC_002,0,0,0,70\n"
    )
    table = read_clinical(csv)
    assert "TTP" not in table.frame.columns and "AFP" not in table.frame.columns
    assert "Alcohol" not in table.frame.columns
    assert table.frame["age"].tolist() == [61.0, 70.0]  # a unit: the same variable


def test_three_decimal_figures_among_a_tables_decimals_are_no_thousands_warning(tmp_path):
    csv = tmp_path / "clinical.csv"  # a float_format="%.3f" export: TTP 22.240 is 22.24
    csv.write_text("TCIA_ID,TTP,OS\nHCC_001,22.240,0.657\nHCC_002,2.135,14.882\n")
    table = read_clinical(csv)
    assert table.frame["TTP"].tolist() == [22.24, 2.135]
    assert "WARNING" not in "\n".join(table.report)


def test_no_value_words_leave_an_unknown_column_numeric(tmp_path):
    csv = tmp_path / "clinical.csv"
    csv.write_text("TCIA_ID,ECOG\nHCC_001,1\nHCC_002,none\nHCC_003,-\nHCC_004,2\n")
    table = read_clinical(csv)
    assert table.frame["ECOG"].tolist()[::3] == [1.0, 2.0]
    assert table.frame["ECOG"].isna().sum() == 2


def test_an_unlisted_column_of_groups_given_as_bounds_stays_text(tmp_path):
    csv = tmp_path / "clinical.csv"  # TCIA's agegp: a group, not a lab's limit
    csv.write_text("TCIA_ID,agegp,AFP\nHCC_001,<=60,>400\nHCC_002,>60,12\n")
    table = read_clinical(csv)
    assert "agegp" not in table.frame.columns and table.raw.loc["HCC_002", "agegp"] == ">60"
    assert table.frame.loc["HCC_001", "AFP"] == 400.0  # a listed column's bound: its number


def test_a_binary_file_given_as_the_table_is_said_not_to_be_text(tmp_path):
    """Its first bytes were echoed as the 'columns' (NUL and control bytes in the message)."""
    path = tmp_path / "table.csv"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 2)
    with pytest.raises(InputError) as info:
        read_clinical(path)
    text = str(info.value)
    assert text.startswith(f"{path}: is not a text table (binary content")
    assert all(ch.isprintable() for ch in text), repr(text)


def test_a_header_cell_wrapped_in_excel_is_no_binary_file(tmp_path):
    """A header cell with a line break (Alt+Enter in Excel) was called binary content."""
    path = tmp_path / "wrapped.csv"
    pd.DataFrame({"Patient\nID": ["A"], "AFP": [1]}).to_csv(path, index=False)
    with pytest.raises(InputError) as info:
        read_clinical(path)
    text = str(info.value)
    assert "no TCIA_ID column (columns: Patient ID" in text and "binary" not in text, text
    assert "\n" not in text


def test_a_duplicate_id_is_named_as_the_sheet_writes_it(tmp_path):
    """'HCC 4' and 'HCC004' are both HCC_004: the warning named only HCC_004, which a search
    of the sheet does not find."""
    csv = tmp_path / "clinical.csv"
    csv.write_text("TCIA_ID,AFP\nHCC 4,10\nHCC004,20\nHCC_002,5\nHCC_002,5\n")
    report = read_clinical(csv).report
    (warning,) = [r for r in report if r.startswith("WARNING")]
    assert warning.startswith("WARNING: HCC_004 (written 'HCC 4', 'HCC004') has 2 rows")
    (note,) = [r for r in report if "identical rows" in r]
    assert "duplicate TCIA_ID(s) HCC_002 with identical rows" in note  # no list's brackets


def test_a_cell_with_its_columns_own_unit_is_read_as_its_number(tmp_path):
    """'63 years', '0.9 ng/mL' and '3.6 cm' made a whole column missing; another unit
    ('36 mm') is not converted: that cell stays unknown, said."""
    csv = tmp_path / "clinical.csv"
    csv.write_text(
        "TCIA_ID,AFP,age,Tr_Size,T_involvment\n"
        "HCC_001,0.9 ng/mL,63 years,3.6 cm,30%\n"
        "HCC_002,<5 ng/ml,50,36 mm,75 %\n"
        "HCC_003,1200,70 y,4,>50%\n"
    )
    table = read_clinical(csv)
    frame = table.frame
    assert frame["AFP"].tolist() == [0.9, 5.0, 1200.0]
    assert frame["age"].tolist() == [63.0, 50.0, 70.0]
    assert frame.loc["HCC_001", "Tr_Size"] == 3.6 and pd.isna(frame.loc["HCC_002", "Tr_Size"])
    assert frame["T_involvment"].tolist() == [1.0, 2.0, 2.0]  # a share: its group
    text = "\n".join(table.report)
    said = "AFP: 2 value(s) written with the column's unit (HCC_001 '0.9 ng/mL', HCC_002 '<5"
    assert said in text
    assert "Tr_Size: unknown value(s) HCC_002 '36 mm' treated as missing" in text
    # a cell the unit was taken off but no number then read is not counted as read, and is
    # named as the sheet writes it; an exponent is a number; a share's bound when sure
    csv.write_text(
        "TCIA_ID,AFP,age,Tr_Size,T_involvment\n"
        "HCC_001,1e3 ng/mL,1.2.3 years,. cm,<30%\n"
        "HCC_002,5,50,3 cm,<60%\n"
        "HCC_003,7,60,4,>60%\n"
    )
    table = read_clinical(csv)
    text = "\n".join(table.report)
    assert table.frame["AFP"].tolist() == [1000.0, 5.0, 7.0]
    assert table.frame["T_involvment"].tolist()[::2] == [1.0, 2.0]
    assert pd.isna(table.frame.loc["HCC_002", "T_involvment"])  # under 60 %: either group
    assert "Tr_Size: 1 value(s) written with the column's unit (HCC_002 '3 cm')" in text
    assert "age: unknown value(s) HCC_001 '1.2.3 years' treated as missing" in text
    assert "age: " not in text.replace("age: unknown", "")  # no unit cell read for age


def test_formulas_whose_results_were_never_saved_are_said(tmp_path):
    """A workbook written by a program (openpyxl, a script) holds formulas without results:
    they read as empty, said only as 'missing values: age (1)'."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "data table"
    sheet.append(["TCIA_ID", "age", "TTP"])
    sheet.append(["HCC_001", "=60+7", 12])
    sheet.append(["HCC_002", 55, "=1/0"])
    book.save(tmp_path / "clinical.xlsx")
    table = read_clinical(tmp_path / "clinical.xlsx")
    [said] = [r for r in table.report if "formulas" in r]
    assert "2 cell(s)" in said and "B2, C3" in said and "save it" in said
    sheet["B2"], sheet["C3"] = 67, 3  # plain values: nothing to say
    book.save(tmp_path / "plain.xlsx")
    assert not any("formulas" in r for r in read_clinical(tmp_path / "plain.xlsx").report)


def test_a_workbook_named_csv_is_said_to_be_one(tmp_path):
    """An .xlsx renamed .csv failed with pandas' 'ParserError: Error tokenizing data'."""
    pd.DataFrame(ROWS).to_excel(tmp_path / "c.xlsx", index=False)
    (tmp_path / "c.csv").write_bytes((tmp_path / "c.xlsx").read_bytes())
    with pytest.raises(InputError, match=r"c.csv: is a spreadsheet workbook .* name \(.csv\)"):
        read_clinical(tmp_path / "c.csv")


def test_a_workbooks_other_text_cells_never_decide_a_columns_decimal_mark_silently(tmp_path):
    """One text '12,5' in TTP made the workbook's mark a comma: AFP's text '1,234' became 1.234
    with no word (number cells say nothing of a mark; a few text cells elsewhere say little)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "data table"
    sheet.append(["TCIA_ID", "AFP", "TTP"])
    sheet.append(["HCC_001", 7.7, 3.2])
    sheet.append(["HCC_002", "1,234", 6.0])
    sheet.append(["HCC_003", 12.3, "12,5"])
    book.save(tmp_path / "clinical.xlsx")
    table = read_clinical(tmp_path / "clinical.xlsx")
    assert table.frame.loc["HCC_003", "TTP"] == 12.5
    [said] = [r for r in table.report if "HCC_002 '1,234'" in r]
    assert said.startswith("WARNING: AFP: HCC_002 '1,234' read with ',' as the decimal mark")
    assert "numbers written as text in TTP use it" in said
    # a CSV's cells are all text: the other columns' decimals do decide, without a warning
    csv = tmp_path / "clinical.csv"
    csv.write_text('TCIA_ID,AFP,TTP\nHCC_001,"7,7","3,2"\nHCC_002,"1,234","6,0"\n')
    assert "WARNING" not in "\n".join(read_clinical(csv).report)


def test_a_percentage_cell_and_a_date_formatted_number_are_read_as_the_workbook_means(tmp_path):
    """A cell typed 30% is the number 0.3 formatted as a percentage: it was an unknown '0.3'
    and dropped. An interval formatted as a date was an unknown '1900-03-15 00:00:00'."""
    import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "data table"
    sheet.append(["TCIA_ID", "T_involvment", "Interval_BL"])
    sheet.append(["HCC_001", 0.3, 12])
    sheet.append(["HCC_002", 0.75, datetime.datetime(1900, 3, 15)])
    sheet.append(["HCC_003", "0.3", 2])  # text: no percentage cell, stays unknown
    sheet.append(["HCC_004", 1, 3])  # 100 %: was the code 1 (≤ 50 %), unsaid
    sheet["B2"].number_format = sheet["B3"].number_format = sheet["B5"].number_format = "0%"
    book.save(tmp_path / "clinical.xlsx")
    table = read_clinical(tmp_path / "clinical.xlsx")
    assert table.frame["T_involvment"].tolist()[:2] == [1.0, 2.0]
    assert table.frame.loc["HCC_004", "T_involvment"] == 2.0
    assert "T_involvment: HCC_004 1 read as 100 % (>50 %)" in "\n".join(table.report)
    assert np.isnan(table.frame.loc["HCC_003", "T_involvment"])
    text = "\n".join(table.report)
    assert "T_involvment: number(s) between 0 and 1 (HCC_001 0.3, HCC_002 0.75) read as" in text
    assert "T_involvment: unknown value(s) HCC_003 '0.3'" in text
    assert np.isnan(table.frame.loc["HCC_002", "Interval_BL"])
    assert "WARNING: Interval_BL: HCC_002 1900-03-15 (day number 75) is a date" in text
    assert "00:00:00" not in text  # not listed again as an unknown value


def test_unknown_in_a_yes_no_column_is_missing_without_a_word(tmp_path):
    csv = tmp_path / "clinical.csv"
    csv.write_text("TCIA_ID,Alcohol\nHCC_001,unknown\nHCC_002,Unknown\nHCC_003,yes\n")
    table = read_clinical(csv)
    assert table.frame["Alcohol"].isna().tolist() == [True, True, False]
    assert "unknown value" not in "\n".join(table.report)


def test_a_t_involvment_of_exactly_50_percent_is_the_lower_group():
    """The groups are "<= 50%" and "> 50%": a share written as "50%" must fall in group 1,
    not be moved to group 2 by a strict bound."""
    from napari_livertumor.io.clinical import encode_t_involvment

    assert encode_t_involvment("50%") == 1.0
    assert encode_t_involvment("50 %") == 1.0
    assert encode_t_involvment("51%") == 2.0
    # a percentage cell of exactly 50 % (the number 0.5) too
    assert encode_t_involvment(0.5) == 1.0
    assert encode_t_involvment(0.51) == 2.0


def test_a_t_involvment_bound_that_leaves_the_group_in_doubt_is_no_group():
    """A bound is put in a group only when every share it allows falls in that group: ">= 50%"
    allows 50 % (the lower group) and more (the higher), so it is unknown; a share over 100 %
    is no share and unknown too, never the higher group."""
    from napari_livertumor.io.clinical import encode_t_involvment

    assert encode_t_involvment(">=50%") is None
    assert encode_t_involvment("≥50%") is None
    assert encode_t_involvment(">50%") == 2.0
    assert encode_t_involvment(">=51%") == 2.0
    assert encode_t_involvment("<=40%") == 1.0
    assert encode_t_involvment("150%") is None
    assert encode_t_involvment(">120%") is None


def test_an_afp_group_written_as_over_400_is_the_high_group():
    """ ">400" is another spelling of the high AFP group; mapped to 0 it would put those
    patients with the low group."""
    from napari_livertumor.io.clinical import _ENCODERS

    encode = _ENCODERS["afp_group"]
    assert encode(">400") == 1.0
    assert encode("> 400") == 1.0
    assert encode("<400") == 0.0


def test_a_data_dictionary_sheet_before_the_table_is_not_read(tmp_path):
    """A workbook whose first sheet is a data dictionary (Variable | Description | Type, one
    row 'TCIA_ID | patient id | text'): the dictionary was read ("1 patients, 0 encoded
    columns"), and training stopped on no clinical row matching."""
    path = tmp_path / "c.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(
            {
                "Variable": ["TCIA_ID", "age", "AFP"],
                "Description": ["patient id", "age years", "AFP ng/mL"],
                "Type": ["text", "num", "num"],
            }
        ).to_excel(book, sheet_name="data dictionary", index=False)
        pd.DataFrame(ROWS).to_excel(book, sheet_name="clinical", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == ["HCC_001", "HCC_002", "HCC_003", "HCC_004"]
    assert table.frame.loc["HCC_002", "AFP"] == 4000
    assert any("read the sheet 'clinical' (not 'data dictionary')" in r for r in table.report)
    # a table under a title row still wins over the dictionary (its header is its 2nd row)
    titled = tmp_path / "t.xlsx"
    body = pd.DataFrame(ROWS)
    title = ["Clinical data, exported 2026"] + [None] * (body.shape[1] - 1)
    with pd.ExcelWriter(titled) as book:
        pd.DataFrame(
            {"Variable": ["TCIA_ID", "age"], "Description": ["id", "years"], "Type": ["t", "n"]}
        ).to_excel(book, sheet_name="dictionary", index=False)
        pd.DataFrame([title, list(body.columns), *body.values.tolist()]).to_excel(
            book, sheet_name="Tabelle1", index=False, header=False
        )
    table = read_clinical(titled)
    assert len(table.frame) == 4 and table.frame.loc["HCC_002", "AFP"] == 4000
    # a sheet named "data table" without the ID column does not hide the one with it
    named = tmp_path / "n.xlsx"
    with pd.ExcelWriter(named) as book:
        pd.DataFrame({"note": ["see the other sheet"]}).to_excel(
            book, sheet_name="data table", index=False
        )
        pd.DataFrame(ROWS).to_excel(book, sheet_name="patients", index=False)
    table = read_clinical(named)
    assert len(table.frame) == 4
    assert any(
        "the sheet 'data table' has no TCIA_ID column; read the sheet 'patients'" in r
        for r in table.report
    )


def test_values_no_patient_has_are_named_and_treated_as_missing(tmp_path):
    """An AFP of 1e12 (a typo) moved that patient's weak label from 0.12 to 1.0: only
    negatives were caught. Too large a value is treated as missing, named with its patient."""
    pd.DataFrame(
        {
            "TCIA_ID": ["HCC_001", "HCC_002", "HCC_003", "HCC_004"],
            "age": [250, -1, 64, 0],
            "AFP": [12.0, 1e12, 250_000, 3.1],
            "Tr_Size": [9999, 3.5, 24.0, 0],
            "Interval_BL": [30, 1_000_000, 75, 12],
            "TTP": [14.2, 1e6, 3.0, 80.0],
            "OS": [30.0, 20.0, 40000, 90.0],
        }
    ).to_csv(tmp_path / "c.csv", index=False)
    table = read_clinical(tmp_path / "c.csv")
    f = table.frame
    assert f["age"].isna().tolist() == [True, True, False, True]
    assert f["AFP"].isna().tolist() == [False, True, False, False]  # 250 000: real, kept
    assert f["Tr_Size"].isna().tolist() == [True, False, False, False]  # 0: no tumor, kept
    assert f["Interval_BL"].isna().tolist() == [False, True, False, False]
    assert f["TTP"].isna().tolist() == [False, True, False, False]
    assert f["OS"].isna().tolist() == [False, False, True, False]
    text = "\n".join(table.report)
    # each patient beside its own value (the values were listed sorted: HCC_001 beside -1)
    assert "age: HCC_001 250, HCC_002 -1, HCC_004 0 outside the plausible 1–120 years" in text
    assert "AFP: HCC_002 1e12 outside the plausible 0–1e7 ng/mL treated as missing" in text
    assert "Tr_Size: HCC_001 9999 outside the plausible 0–40 cm" in text
    assert "Interval_BL: HCC_002 1e6 outside the plausible 0–3650 days" in text
    assert "TTP: HCC_002 1e6 outside the plausible 0–36500 (a century in days)" in text


def test_a_table_of_ids_alone_says_it_has_no_clinical_columns(tmp_path):
    """It said "the table has a TCIA_ID column but no patient rows" (pandas calls a frame of
    rows and no columns empty)."""
    (tmp_path / "c.csv").write_text("TCIA_ID\n" + "".join(f"HCC_00{i}\n" for i in range(1, 7)))
    with pytest.raises(InputError) as info:
        read_clinical(tmp_path / "c.csv")
    assert "6 patient row(s) but no clinical columns" in str(info.value)
    assert "no patient rows" not in str(info.value)


def test_invisible_characters_and_unicode_dashes_in_ids_read_as_the_id(tmp_path):
    """'HCC_001' + a zero-width space and 'HCC–002' (an en dash) matched no patient, and were
    listed looking the same as the patients' own IDs."""
    from napari_livertumor.io.clinical import shown_id

    assert normalise_id("HCC_001\u200b") == "HCC_001"
    assert normalise_id("HCC\u2013002") == "HCC_002"
    assert normalise_id("\ufeffHCC\u00ad3") == "HCC_003"
    assert normalise_id("Pat\u2212\u00e901") == "Pat-\u00e901"  # (other IDs: only the dash)
    pd.DataFrame(
        {"TCIA_ID": ["HCC_001\u200b", "HCC\u2013002", "HCC_00\u00a03"], "age": [60, 61, 62]}
    ).to_csv(tmp_path / "c.csv", index=False)
    assert list(read_clinical(tmp_path / "c.csv").frame.index) == [
        "HCC_001",
        "HCC_002",
        "HCC_00\u00a03",
    ]
    # what still does not match shows what does not show
    assert shown_id("HCC_00\u00a03") == "'HCC_00\\xa03'"
    assert shown_id("Pat\u00e9\u0301") == "'Pat\u00e9\\u0301'"
    assert shown_id("HCC_003") == "HCC_003" and shown_id("HCC 3 b") == "HCC 3 b"


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("c.csv", b"", "the file is empty (0 bytes)"),
        ("c.csv", b"\n\n   \n", "the file is empty (only blank lines or spaces)"),
        ("c.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "is not a text table"),
        ("c.xlsx", b"", "the file is empty (0 bytes)"),
        ("c.xlsx", b"TCIA_ID,age\nHCC_001,60\n", "is not an Excel workbook: it holds text"),
        ("c.xlsx", b"%PDF-1.4\n\x00\x01\x02", "is not an Excel workbook: it holds binary"),
        ("c.xls", b"<html><table><tr><td>TCIA_ID</td></tr></table>", "it holds HTML or XML"),
    ],
)
def test_a_file_that_holds_no_table_says_so_plainly(tmp_path, name, content, said):
    """pandas' words were passed on: "(EmptyDataError: No columns to parse from file)",
    "(ParserError: Error tokenizing data. C error: …\\n)" (a line break in a GUI line),
    "(ValueError: Excel file format cannot be determined, you must specify an engine
    manually.)"."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError) as info:
        read_clinical(tmp_path / name)
    text = str(info.value)
    assert said in text and "\n" not in text and "Error" not in text


def test_a_workbook_whose_sheet_is_empty_says_so(tmp_path):
    """It said "no TCIA_ID column (columns: ...)"."""
    path = tmp_path / "c.xlsx"
    pd.DataFrame().to_excel(path, sheet_name="data table", index=False)
    with pytest.raises(InputError, match="the sheet 'data table' is empty"):
        read_clinical(path)


def test_an_unreadable_table_names_its_readable_twin_beside_it(tmp_path):
    """A damaged clinical.xlsx beside a good clinical.csv: the workbook was refused and the
    CSV never mentioned."""
    (tmp_path / "clinical.xlsx").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    pd.DataFrame(ROWS).to_csv(tmp_path / "clinical.csv", index=False)
    with pytest.raises(InputError) as info:
        read_clinical(tmp_path / "clinical.xlsx")
    assert "is not an Excel workbook" in str(info.value)
    assert (
        f"clinical.csv beside it reads as a clinical table: give that file as the clinical "
        f"table instead ({tmp_path / 'clinical.csv'})" in str(info.value)
    )
    # a twin that does not read either is not named
    (tmp_path / "clinical.csv").write_text("patient,age\nA,3\n")
    with pytest.raises(InputError) as info:
        read_clinical(tmp_path / "clinical.xlsx")
    assert "clinical.csv" not in str(info.value)


_FEW = {"TCIA_ID": ["HCC_001", "HCC_002", "HCC_003"], "age": [60, 70, 55], "AFP": [10, 4000, 3]}


def test_a_blank_template_sheet_before_the_table_is_not_read(tmp_path):
    """A first sheet holding only a header (every column, no rows) beside the patients'
    sheet of fewer columns: the sheet with the patients is read, and said."""
    path = tmp_path / "c.xlsx"
    header = ["TCIA_ID", "age", "AFP", "Tr_Size", "TTP", "OS", "CLIP", "Sex"]
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(columns=header).to_excel(book, sheet_name="template", index=False)
        pd.DataFrame(_FEW).to_excel(book, sheet_name="patients", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == ["HCC_001", "HCC_002", "HCC_003"]
    assert any("read the sheet 'patients' (not 'template')" in r for r in table.report)


def test_a_scan_list_with_the_ids_before_the_table_is_not_read(tmp_path):
    """A first sheet listing the patients' scans (TCIA_ID, scan date, note) beside the
    clinical sheet: both name the same patients; the one with clinical columns is read."""
    path = tmp_path / "c.xlsx"
    scans = {"TCIA_ID": _FEW["TCIA_ID"], "scan date": ["2001", "2002", "2003"]}
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({**scans, "note": ["a", "b", "c"]}).to_excel(
            book, sheet_name="scans", index=False
        )
        pd.DataFrame(_FEW).to_excel(book, sheet_name="clinical", index=False)
    table = read_clinical(path)
    assert list(table.frame.columns) == ["age", "AFP"]
    assert table.frame.loc["HCC_002", "AFP"] == 4000
    assert any("read the sheet 'clinical' (not 'scans')" in r for r in table.report)


@pytest.mark.parametrize("follow_up_first", [False, True])
def test_a_follow_up_sheet_of_several_visits_a_patient_is_not_read(tmp_path, follow_up_first):
    """A long follow-up sheet (TCIA_ID, Visit, RECIST: three rows a patient) beside the
    baseline sheet of the same patients: counted by rows it looked more like the patients'
    table, and AFP, age and Tr_Size were lost (QA rev66 1)."""
    path = tmp_path / "c.xlsx"
    visits = {
        "TCIA_ID": [i for i in _FEW["TCIA_ID"] for _ in range(3)],
        "Visit": [1, 2, 3] * 3,
        "RECIST": ["SD", "PR", "PD"] * 3,
    }
    # ... and a longer one of more patients, only two columns this package reads
    more = {"TCIA_ID": [f"HCC_{i:03d}" for i in range(1, 8)], "OS": list(range(7))}
    sheets = {"Baseline": _FEW, "Follow-up": visits, "Survival": more}
    order = ["Follow-up", "Survival", "Baseline"] if follow_up_first else list(sheets)
    with pd.ExcelWriter(path) as book:
        for name in order:
            pd.DataFrame(sheets[name]).to_excel(book, sheet_name=name, index=False)
    table = read_clinical(path)
    assert list(table.frame.columns) == ["age", "AFP"]
    assert table.frame.loc["HCC_002", "AFP"] == 4000
    assert any("read the sheet 'Baseline'" in r for r in table.report), table.report
    assert not any("rows that differ" in r for r in table.report)


def test_a_data_dictionary_named_data_table_is_passed_over_for_the_patients(tmp_path):
    """A data dictionary sheet named "data table" (its rows TCIA_ID | patient id | text) was
    read by its name alone: its variables taken for 5 patients, no column encoded, no
    warning (QA rev66 1)."""
    path = tmp_path / "c.xlsx"
    dictionary = {
        "Variable": ["TCIA_ID", "age", "AFP"],
        "Description": ["patient id", "years", "ng/mL"],
        "Type": ["text", "number", "number"],
    }
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(dictionary).to_excel(book, sheet_name="data table", index=False)
        pd.DataFrame(_FEW).to_excel(book, sheet_name="patients", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == ["HCC_001", "HCC_002", "HCC_003"]
    assert any(
        "the sheet 'data table' holds column names or text under its TCIA_ID, no patient IDs "
        "(a data dictionary?); read the sheet 'patients' (not 'data table')" == r
        for r in table.report
    ), table.report
    # a "data table" of IDs of another kind is still read by its name, beside a sheet of none
    other = {"TCIA_ID": ["P1", "P2"], "age": [50, 60], "AFP": [1, 2]}
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({"note": ["read me"]}).to_excel(book, sheet_name="about", index=False)
        pd.DataFrame(other).to_excel(book, sheet_name="data table", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == ["P1", "P2"]
    assert not any("read the sheet" in r for r in table.report), table.report


@pytest.mark.parametrize("ids", ["P", "number"])
def test_a_data_table_of_the_users_own_ids_is_read_beside_a_sheet_of_hcc_ids(tmp_path, ids):
    """A full clinical sheet named "data table" of a cohort's own IDs (P01, or 1 to 4: the
    case names) beside a sheet of HCC_001-like IDs (a reference excerpt of TCIA's table, a
    follow-up sheet of three visits a patient): the HCC sheet was read, the sheet the user
    named passed over as a data dictionary (QA rev67)."""
    from napari_livertumor.synth.clinical import make_clinical_table

    names = [f"P{i:02d}" for i in range(1, 5)] if ids == "P" else [1, 2, 3, 4]
    own = make_clinical_table([{"tlvr": 0.05 * i} for i in range(4)], seed=3, ids=names)
    if ids == "P":
        other = ("TCIA ref", {"TCIA_ID": ["HCC_001", "HCC_002"], "age": [61, 62], "AFP": [1, 2]})
    else:
        visits = [f"HCC_{i:03d}" for i in range(1, 5) for _ in range(3)]
        other = ("follow-up", {"TCIA_ID": visits, "Visit": [1, 2, 3] * 4, "RECIST": ["SD"] * 12})
    path = tmp_path / "c.xlsx"
    with pd.ExcelWriter(path) as book:
        own.to_excel(book, sheet_name="data table", index=False)
        pd.DataFrame(other[1]).to_excel(book, sheet_name=other[0], index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == [str(n) for n in names]
    assert {"age", "AFP", "Tr_Size", "TNM"} <= set(table.frame.columns)
    assert not any("read the sheet" in r or "rows that differ" in r for r in table.report), (
        table.report
    )


@pytest.mark.parametrize("ids", ["HCC", "P"])
def test_a_data_table_of_only_a_header_is_passed_over_as_one_of_no_rows(tmp_path, ids):
    """A "data table" sheet of headers and no rows beside a "Sheet2" of patients: Sheet2 is
    read, but the note called the header a sheet of no HCC_001-like ID (a data dictionary?);
    of IDs of another kind, the empty sheet was read and refused (QA rev67)."""
    path = tmp_path / "c.xlsx"
    rows = dict(_FEW, TCIA_ID=["P1", "P2", "P3"]) if ids == "P" else _FEW
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(columns=["TCIA_ID", "age", "AFP", "Tr_Size"]).to_excel(
            book, sheet_name="data table", index=False
        )
        pd.DataFrame(rows).to_excel(book, sheet_name="Sheet2", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == rows["TCIA_ID"]
    assert (
        "the sheet 'data table' has no patient rows (only its header); read the sheet 'Sheet2' "
        "(not 'data table')" in table.report
    ), table.report


_OWN = {
    "columns": {
        "TCIA_ID": ["P01", "P02", "P03", "P04", "P05"],
        "burden_score": [0.1, 0.4, 0.2, 0.9, 0.5],
        "ct_grade": [1, 3, 2, 4, 2],
    },
    "blank known": {
        "TCIA_ID": ["P01", "P02"],
        "age": [None, None],
        "AFP": [None, None],
        "other": [1, 2],
    },
    "words": {"TCIA_ID": ["alpha", "beta", "gamma"], "score": [0.1, 0.2, 0.3]},
    "text": {"TCIA_ID": ["P01", "P02"], "site": ["A", "B"], "remark": ["ok", "redo"]},
}


def _book(path: Path, sheets: dict) -> Path:
    """A workbook at ``path`` of ``sheets`` (name: columns), in order."""
    with pd.ExcelWriter(path) as book:
        for name, columns in sheets.items():
            pd.DataFrame(columns).to_excel(book, sheet_name=name, index=False)
    return path


@pytest.mark.parametrize("kind", list(_OWN))
def test_a_data_table_of_columns_the_package_does_not_know_is_read_beside_hcc_rows(tmp_path, kind):
    """A "data table" of the user's own IDs and columns (weak_columns of a recipe:
    burden_score, ct_grade; or age and AFP left blank) beside a sheet of two HCC rows: the
    HCC sheet was read ("holds no patient ID like HCC_001 ... (a data dictionary?)"), no
    patient matched and training refused to start (QA rev68 1)."""
    rows = _OWN[kind]
    table = read_clinical(_book(tmp_path / "c.xlsx", {"data table": rows, "TCIA example": _FEW}))
    assert list(table.frame.index) == rows["TCIA_ID"]
    assert not any("read the sheet" in r for r in table.report), table.report


def test_a_data_dictionary_of_the_users_own_columns_is_still_passed_over(tmp_path):
    """A dictionary named "data table" whose variables are the user's own (no column this
    package knows): its rows are names described in words, not patients."""
    dictionary = {
        "Variable": ["TCIA_ID", "burden_score", "ct_grade", "site"],
        "Description": ["patient id", "tumour burden score", "CT grade", "hospital site"],
        "Units": ["text", "points", "1-4", "A/B"],
    }
    sheets = {"data table": dictionary, "Sheet2": _OWN["columns"]}
    table = read_clinical(_book(tmp_path / "c.xlsx", sheets))
    assert list(table.frame.index) == _OWN["columns"]["TCIA_ID"]
    assert any("read the sheet 'Sheet2' (not 'data table')" in r for r in table.report)
    assert any("a data dictionary?" in r for r in table.report), table.report


@pytest.mark.parametrize(
    "dictionary",
    [
        {"TCIA_ID": ["Q1", "Q2", "Q3", "Q4"], "description": list("abcd"), "type": ["1-5"] * 4},
        {"TCIA_ID": ["V01", "V02", "V03"], "Variable": ["age", "sex", "afp"],
         "Description": ["Age at dx", "Sex", "AFP ng/mL"]},
        {"TCIA_ID": ["score_a", "score_b", "burden"], "Min": [0, 1, 1], "Max": [9, 5, 4]},
        {"TCIA_ID": ["item1", "item2", "item3"], "meaning": ["age at dx", "sex", "AFP"]},
    ],
)  # fmt: skip
def test_a_dictionary_of_coded_variables_named_data_table_is_passed_over(tmp_path, dictionary):
    """A dictionary named "data table" whose variables have digits (Q1, V01, item1) or whose
    columns give a number (Min, Max) was read as a cohort's own patients, beside a sheet of
    patients with age and AFP (QA rev68b 1): its header (Description, Min) says what it is."""
    own = {"TCIA_ID": ["P01", "P02", "P03"], "age": [60, 61, 62], "AFP": [1, 2, 3]}
    table = read_clinical(_book(tmp_path / "c.xlsx", {"data table": dictionary, "Patients": own}))
    assert list(table.frame.index) == own["TCIA_ID"]
    assert any("read the sheet 'Patients' (not 'data table')" in r for r in table.report)


def test_a_data_table_of_no_known_column_beside_one_with_some_is_read_and_said(tmp_path):
    """A "data table" of notes only, beside a sheet with age and AFP, is read by its name,
    which gave a table of no usable column with no word of the other sheet (QA rev68b 2)."""
    notes = {"TCIA_ID": ["P1", "P2"], "notes": ["rescanned", "motion"]}
    own = {"TCIA_ID": ["P01", "P02", "P03"], "age": [60, 61, 62], "AFP": [1, 2, 3]}
    table = read_clinical(_book(tmp_path / "c.xlsx", {"data table": notes, "Sheet1": own}))
    assert list(table.frame.index) == ["P1", "P2"]
    (said,) = [r for r in table.report if "none of the clinical columns" in r]
    assert "the sheet 'Sheet1' has age, AFP: if that sheet is meant, name it 'data table'" in said


@pytest.mark.parametrize("ids", [["P01", "P02", "P03"], [1, 2, 3], ["HCC_003", "HCC_004"]])
def test_a_data_table_of_the_id_and_one_column_is_read(tmp_path, ids):
    """A "data table" of TCIA_ID and one other column beside a sheet "reference" of two
    HCC rows: the data table was said to have no TCIA_ID column (a header of fewer than
    three names was not taken for one) and passed over (QA rev68 2)."""
    rows = {"TCIA_ID": ids, "AFP": [5, 6, 7][: len(ids)]}
    path = tmp_path / "c.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(rows).to_excel(book, sheet_name="data table", index=False)
        pd.DataFrame(_FEW).drop(index=2).to_excel(book, sheet_name="reference", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == [normalise_id(i) for i in ids]
    assert list(table.frame["AFP"]) == rows["AFP"]
    assert not any("read the sheet" in r for r in table.report), table.report
    # ... and so under a title row
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(
            [["Cohort 2026", None], ["TCIA_ID", "AFP"], *zip(ids, rows["AFP"], strict=False)]
        ).to_excel(book, sheet_name="data table", index=False, header=False)
        pd.DataFrame(_FEW).to_excel(book, sheet_name="reference", index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == [normalise_id(i) for i in ids]
    assert not any("read the sheet" in r for r in table.report), table.report


def test_two_sheets_alike_read_the_first_and_say_which_others_were_as_likely(tmp_path):
    """Two sheets that score the same (a copy kept beside the table, or one sheet per cohort
    with the same columns): the first was read and the other never named as a candidate."""
    path = tmp_path / "c.xlsx"
    later = dict(_FEW, AFP=[1, 2, 3])
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(_FEW).to_excel(book, sheet_name="cohort A", index=False)
        pd.DataFrame(later).to_excel(book, sheet_name="cohort B", index=False)
    table = read_clinical(path)
    assert table.frame.loc["HCC_002", "AFP"] == 4000
    assert any(
        "the sheet 'cohort B' looks as much like the patients' table as 'cohort A', which was "
        "read as the first of them" in r
        for r in table.report
    ), table.report
    # one sheet plainly better (more patients): no such line
    with pd.ExcelWriter(path) as book:
        pd.DataFrame({k: v[:2] for k, v in _FEW.items()}).to_excel(
            book, sheet_name="cohort A", index=False
        )
        pd.DataFrame(later).to_excel(book, sheet_name="cohort B", index=False)
    table = read_clinical(path)
    assert table.frame.loc["HCC_002", "AFP"] == 2
    assert not any("as much like" in r for r in table.report), table.report


@pytest.mark.parametrize(
    "header",
    ["TCIA\u200b_ID", "TCIA\u2013ID", "\ufeffTCIA_ID"],
    ids=["zero-width space", "en dash", "byte-order mark"],
)
def test_an_id_header_with_an_invisible_character_or_a_dash_is_the_id_column(tmp_path, header):
    """The TCIA_ID header as a spreadsheet may carry it (a zero-width space, an en dash, a
    byte-order mark pasted in) is the ID column."""
    path = tmp_path / "c.xlsx"
    rows = dict(_FEW)
    rows[header] = rows.pop("TCIA_ID")
    pd.DataFrame(rows).to_excel(path, index=False)
    table = read_clinical(path)
    assert list(table.frame.index) == ["HCC_001", "HCC_002", "HCC_003"]


def test_a_csv_of_control_bytes_without_a_nul_is_not_a_text_table(tmp_path):
    """No NUL byte, but a fifth of the bytes control characters: no text table."""
    path = tmp_path / "c.csv"
    path.write_bytes(b"TCIA\x01" * 200)
    with pytest.raises(InputError) as info:
        read_clinical(path)
    assert str(info.value).startswith(f"{path}: is not a text table (binary content")
