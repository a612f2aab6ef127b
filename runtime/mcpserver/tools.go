package mcpserver

// toolDefs lists every tool, in the order tools/list shows them.
func (s *Server) toolDefs() []toolDef {
	return []toolDef{
		runProgramDef(), resumeProgramDef(), getTraceDef(), listTracesDef(),
		listProgramsDef(), getProgramDef(), deleteProgramDef(),
		registerToolDef(), uploadModuleDef(), listToolsDef(), getToolDef(), removeToolDef(),
		putSecretDef(), eraseSecretDef(), verifyAuditDef(),
	}
}
