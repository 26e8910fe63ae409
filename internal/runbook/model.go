package runbook

// Doc is a runbook as a sequence of sections; Markdown and HTML render it.
type Doc struct {
	Title    string    `json:"title"`
	Sections []Section `json:"sections"`
}

// Section is one titled part of a runbook.
type Section struct {
	Title  string  `json:"title"`
	Blocks []Block `json:"blocks"`
}

// Block is one paragraph, list, table or list of steps. Exactly one of its
// fields is set.
type Block struct {
	// Para is a paragraph of plain text.
	Para string `json:"para,omitempty"`
	// List is a bulleted list of plain text items.
	List []string `json:"list,omitempty"`
	// Table has a header row and rows of plain text cells.
	Table *Table `json:"table,omitempty"`
	// Steps is an ordered list of steps, each with its commands.
	Steps []Step `json:"steps,omitempty"`
	// Code is a block of text shown as it is (a file's content).
	Code string `json:"code,omitempty"`
}

// Table is a table of plain text.
type Table struct {
	Header []string   `json:"header"`
	Rows   [][]string `json:"rows"`
}

// Step is one step of a procedure: what to do, and the commands that do
// it, one per line, to be typed as they are.
type Step struct {
	Text     string   `json:"text"`
	Commands []string `json:"commands,omitempty"`
}

func para(s string) Block        { return Block{Para: s} }
func list(items ...string) Block { return Block{List: items} }
func code(s string) Block        { return Block{Code: s} }
func steps(s ...Step) Block      { return Block{Steps: s} }
func table(h []string, rows [][]string) Block {
	return Block{Table: &Table{Header: h, Rows: rows}}
}
