package main

// actorsFor gives the trigger every target's client, by target name.
func actorsFor(clients map[string]*targetClient) map[string]any {
	out := make(map[string]any, len(clients))
	for name, c := range clients {
		out[name] = c.client
	}
	return out
}
