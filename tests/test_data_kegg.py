"""KEGG hierarchy: building, filtering against RNA genes, GMT + BRITE matching."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from survmamba_lite.data.kegg import (build_genomic_hierarchy, hierarchy_file_stats, hierarchy_from_gmt_brite,
                                      hierarchy_from_kegg_table, normalize_pathway_name, read_gmt,
                                      read_hierarchy_tsv, write_hierarchy_tsv)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KEGG = DATA / "kegg"
XENA_BLCA = DATA / "tcga" / "xena" / "blca" / "rna_clean.csv"


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"real data not found at {p} (see ../shared/data/README.md)")


def _frame(rows):
    return pd.DataFrame(rows, columns=["function_id", "function_name", "process", "genes"])


def test_build_filters_functions_and_processes():
    table = _frame([("f1", "a", "P", "A,B,X"), ("f2", "b", "Q", "C,Y"), ("f3", "c", "P", "B,D,A"),
                    ("f4", "d", "R", "Z")])
    h, s = build_genomic_hierarchy(table, genes=["A", "B", "C", "D", "E"], min_genes=2)
    assert h.function_ids == ("f1", "f3") and h.process_names == ("P",)
    assert h.function_genes == ((0, 1), (1, 3, 0))
    assert s.dropped_functions == ["f2", "f4"] and s.dropped_processes == ["Q", "R"]
    assert (s.n_hierarchy_genes, s.n_hierarchy_genes_present, s.n_hierarchy_genes_missing) == (7, 4, 3)
    assert s.n_rna_genes_in_no_function == 2  # C and E
    h1, _ = build_genomic_hierarchy(table, genes=["A", "B", "C", "D", "E"], min_genes=1)
    assert h1.process_names == ("P", "Q") and h1.n_functions == 3


def test_bad_hierarchy_files(tmp_path):
    with pytest.raises(ValueError, match=r"duplicated function_id \['f1'\]"):
        build_genomic_hierarchy(_frame([("f1", "a", "P", "A"), ("f1", "b", "P", "B")]), ["A", "B"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['process'\]"):
        build_genomic_hierarchy(pd.DataFrame({"function_id": ["f"], "function_name": ["x"], "genes": ["A"]}), ["A"])
    with pytest.raises(ValueError, match=r"function\(s\) \['f2'\] list no genes"):
        build_genomic_hierarchy(_frame([("f1", "a", "P", "A"), ("f2", "b", "P", "")]), ["A"])
    with pytest.raises(ValueError, match="RNA gene columns are duplicated"):
        build_genomic_hierarchy(_frame([("f1", "a", "P", "A")]), ["A", "A"])
    with pytest.raises(FileNotFoundError, match="survmamba kegg"):
        read_hierarchy_tsv(tmp_path / "nope.tsv")


def test_round_trip(tmp_path):
    df = _frame([("f1", "a b", "P", "A, B ,A"), ("f2", "c", "Q", "C")]).assign(category=["X", "Y"])
    write_hierarchy_tsv(df, tmp_path / "h.tsv")
    back = read_hierarchy_tsv(tmp_path / "h.tsv")
    assert back.genes.tolist() == ["A,B", "C"] and back.category.tolist() == ["X", "Y"]


def test_gmt_and_brite_small(tmp_path):
    (tmp_path / "lib.txt").write_text("Cell cycle\t\tCDK1\tCCNB1\n"
                                      "Autophagy\t\tATG5\n"
                                      "Drug metabolism\t\tCYP1A1\n"
                                      "Made-up pathway\tdesc\tX1\tX2\n")
    brite = {"name": "br08901", "children": [
        {"name": "Cellular Processes", "children": [
            {"name": "Cell growth and death", "children": [{"name": "04110  Cell cycle"}]},
            {"name": "Transport and catabolism", "children": [{"name": "04140  Autophagy - animal"},
                                                              {"name": "04138  Autophagy - yeast"}]}]},
        {"name": "Metabolism", "children": [
            {"name": "Xenobiotics biodegradation and metabolism", "children": [
                {"name": "00982  Drug metabolism - cytochrome P450"},
                {"name": "00983  Drug metabolism - other enzymes"}]}]}]}
    (tmp_path / "br.json").write_text(json.dumps(brite))
    assert read_gmt(tmp_path / "lib.txt")["Made-up pathway"] == ["X1", "X2"]
    df, match = hierarchy_from_gmt_brite(tmp_path / "lib.txt", tmp_path / "br.json")
    print(match.summary())
    assert df.function_id.tolist() == ["hsa04110", "hsa04140"]
    assert df.process.tolist() == ["Cell growth and death", "Transport and catabolism"]
    assert match.exact == 1 and match.other == [("Autophagy", "Autophagy - animal", "prefix")]
    assert len(match.unmatched) == 2 and "ambiguous" in match.unmatched[0] and "Made-up" in match.unmatched[1]
    kept, _ = hierarchy_from_gmt_brite(tmp_path / "lib.txt", tmp_path / "br.json",
                                       exclude_categories=["Cellular Processes"])
    assert kept.empty
    with pytest.raises(ValueError, match="match no level-1 category"):
        hierarchy_from_gmt_brite(tmp_path / "lib.txt", tmp_path / "br.json", exclude_categories=["Nope"])


def test_normalize_pathway_name():
    assert normalize_pathway_name("NF-kappa B signaling pathway") == "nf kappa b signaling pathway"
    assert normalize_pathway_name("Cell cycle - Homo sapiens (human)") == "cell cycle"


@pytest.mark.realdata
def test_kegg352_table_counts():
    _need(KEGG / "kegg352_pathway_class_genes.tsv", XENA_BLCA)
    df = hierarchy_from_kegg_table(KEGG / "kegg352_pathway_class_genes.tsv")
    stats = hierarchy_file_stats(df)
    print("352 table:", stats)
    assert (stats["n_functions"], stats["n_processes"]) == (352, 45)
    genes = pd.read_csv(XENA_BLCA, nrows=0).columns[1:].tolist()
    for min_genes in (1, 3, 5):
        h, s = build_genomic_hierarchy(df, genes, min_genes)
        print(f"Xena BLCA ({len(genes)} genes), min_genes={min_genes}: {s.n_functions} functions, "
              f"{s.n_processes} processes; {s.n_hierarchy_genes_present} hierarchy genes measured")
        # independent count with plain pandas/sets
        gs = set(genes)
        present = df.genes.str.split(",").map(lambda g: len(set(g) & gs))
        assert s.n_functions == int((present >= min_genes).sum())
        assert s.n_processes == df.loc[present >= min_genes, "process"].nunique()
    h, s = build_genomic_hierarchy(df, genes, 1)
    assert (s.n_functions, s.n_processes, s.n_hierarchy_genes_present) == (333, 45, 1343)
    no_dis = hierarchy_from_kegg_table(KEGG / "kegg352_pathway_class_genes.tsv", ["Human Diseases"])
    assert len(no_dis) == 352 - 96 and "Human Diseases" not in set(no_dis.category)


@pytest.mark.realdata
def test_gmt_brite_real():
    _need(KEGG / "KEGG_2021_Human.txt", KEGG / "br08901.json")
    sets = read_gmt(KEGG / "KEGG_2021_Human.txt")
    df, match = hierarchy_from_gmt_brite(KEGG / "KEGG_2021_Human.txt", KEGG / "br08901.json")
    print(match.summary())
    stats = hierarchy_file_stats(df)
    print("GMT + BRITE:", stats)
    assert len(sets) == 320
    assert match.exact + len(match.other) + len(match.unmatched) == 320
    assert len(df) == match.exact + len(match.other) == 314 and stats["n_processes"] == 42
    assert set(df.category) <= {"Metabolism", "Genetic Information Processing", "Environmental Information Processing",
                                "Cellular Processes", "Organismal Systems", "Human Diseases", "Drug Development"}
    # the classes agree with the 352-pathway table wherever both list a pathway
    t = hierarchy_from_kegg_table(KEGG / "kegg352_pathway_class_genes.tsv").set_index("function_id")
    both = df[df.function_id.isin(t.index)]
    assert len(both) > 250
    assert (both.set_index("function_id").process == t.loc[both.function_id, "process"]).all()
