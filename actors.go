package main

// actorsFor gives the trigger every target's client, by target name.
func actorsFor(clients map[string]*targetClient) map[string]any {
	out := make(map[string]any, len(clients))
	for name, c := range clients {
		switch {
		case c.vspc != nil:
			out[name] = c.vspc
		case c.em != nil:
			out[name] = c.em
		case c.vbr != nil:
			out[name] = c.vbr
		}
	}
	return out
}
