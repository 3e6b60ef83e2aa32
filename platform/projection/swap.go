package projection

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// swap puts the shadow tables in place of the live ones inside tx, and gives their
// indexes (and the constraints they back) the live indexes' names, so that later
// migrations find what they expect. It returns the indexes it found no live twin for,
// which keep their generated names.
func swap(ctx context.Context, tx pgx.Tx, m *Model) (unmatched []string, err error) {
	for _, t := range m.Tables {
		live, shadow := t.Name, shadowName(t.Name)
		liveIdx, err := indexes(ctx, tx, live)
		if err != nil {
			return nil, err
		}
		shadowIdx, err := indexes(ctx, tx, shadow)
		if err != nil {
			return nil, err
		}
		retired := live + "__retired"
		for _, stmt := range []string{
			fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, ident(live), ident(retired)),
			fmt.Sprintf(`ALTER TABLE %s RENAME TO %s`, ident(shadow), ident(live)),
			fmt.Sprintf(`DROP TABLE %s`, ident(retired)),
		} {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return nil, fmt.Errorf("swap %s: %w", live, err)
			}
		}
		used := map[string]bool{}
		for _, si := range shadowIdx {
			matched := false
			for _, li := range liveIdx {
				if used[li.name] || li.shape != si.shape {
					continue
				}
				used[li.name], matched = true, true
				if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER INDEX %s RENAME TO %s`, ident(si.name), ident(li.name))); err != nil {
					return nil, fmt.Errorf("rename index %s of %s: %w", si.name, live, err)
				}
				break
			}
			if !matched {
				unmatched = append(unmatched, si.name)
			}
		}
	}
	return unmatched, nil
}

type index struct {
	name  string
	shape string // the definition without the index and table names
}

func indexes(ctx context.Context, tx pgx.Tx, table string) ([]index, error) {
	rows, err := tx.Query(ctx, `SELECT c.relname, i.indisunique, pg_get_indexdef(i.indexrelid)
	                              FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	                             WHERE i.indrelid = $1::regclass ORDER BY c.relname`, ident(table))
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		var unique bool
		var def string
		if err := r.Scan(&ix.name, &unique, &def); err != nil {
			return ix, err
		}
		_, using, _ := strings.Cut(def, " USING ")
		ix.shape = fmt.Sprintf("unique=%t %s", unique, using)
		return ix, nil
	})
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// compare reports, per table, the row counts and content hashes of the live and the
// shadow version and the keys of the rows that differ.
func compare(ctx context.Context, tx pgx.Tx, m *Model) (*Report, error) {
	rep := &Report{Identical: true}
	for _, t := range m.Tables {
		tr := TableReport{Table: t.Name}
		sum := `SELECT count(*), COALESCE(md5(string_agg(t::text, E'\n' ORDER BY %s)), '') FROM %s t`
		if err := tx.QueryRow(ctx, fmt.Sprintf(sum, t.Key, ident(t.Name))).Scan(&tr.LiveRows, &tr.LiveHash); err != nil {
			return nil, fmt.Errorf("hash %s: %w", t.Name, err)
		}
		if err := tx.QueryRow(ctx, fmt.Sprintf(sum, t.Key, ident(shadowName(t.Name)))).Scan(&tr.RebuiltRows, &tr.RebuiltHash); err != nil {
			return nil, fmt.Errorf("hash rebuilt %s: %w", t.Name, err)
		}
		if tr.LiveRows != tr.RebuiltRows || tr.LiveHash != tr.RebuiltHash {
			rep.Identical = false
			rows, err := tx.Query(ctx, fmt.Sprintf(`
				SELECT COALESCE(l.k, s.k), CASE WHEN l.k IS NULL THEN 'only_rebuilt' WHEN s.k IS NULL THEN 'only_live' ELSE 'changed' END
				  FROM (SELECT ROW(%[1]s)::text AS k, t::text AS r FROM %[2]s t) l
				  FULL JOIN (SELECT ROW(%[1]s)::text AS k, t::text AS r FROM %[3]s t) s ON l.k = s.k
				 WHERE l.r IS DISTINCT FROM s.r ORDER BY 1 LIMIT %[4]d`, t.Key, ident(t.Name), ident(shadowName(t.Name)), MaxDifferences))
			if err != nil {
				return nil, fmt.Errorf("diff %s: %w", t.Name, err)
			}
			tr.Differences, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Difference, error) {
				var d Difference
				err := r.Scan(&d.Key, &d.Kind)
				return d, err
			})
			if err != nil {
				return nil, fmt.Errorf("diff %s: %w", t.Name, err)
			}
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}
