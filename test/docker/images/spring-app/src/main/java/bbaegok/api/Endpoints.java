package bbaegok.api;

import java.util.Map;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;

@RestController
class Endpoints {
  private final NoteService notes;
  private final String version;
  private final String slot;

  Endpoints(NoteService notes, @Value("${BBAEGOK_APP_VERSION:dev}") String version, @Value("${BBAEGOK_SLOT:}") String slot) {
    this.notes = notes;
    this.version = version;
    this.slot = slot;
  }

  /** As the Go stand-in answers: which release and which slot served (the tests tell blue from green by it). */
  @GetMapping("/")
  Map<String, String> who() {
    return Map.of("app", "bbaegok-api", "version", version, "slot", slot, "runtime", "spring-boot");
  }

  /** As the Go stand-in: answers after `ms` (the load's in-flight requests across a switch: Spring's graceful shutdown). */
  @GetMapping("/slow")
  Map<String, String> slow(@RequestParam long ms) throws InterruptedException {
    Thread.sleep(ms);
    return who();
  }

  @PostMapping("/test/notes")
  Map<String, Object> write(@RequestParam String body) {
    return notes.write(body);
  }

  @GetMapping("/test/notes/{id}")
  Map<String, Object> read(@PathVariable long id, @RequestParam(defaultValue = "0") long holdMs) throws InterruptedException {
    return notes.read(id, holdMs);
  }

  @PostMapping("/test/notes/read-only")
  Map<String, Object> writeInReadOnly(@RequestParam String body) {
    return notes.writeInReadOnly(body);
  }
}
