// Search as you type: the header search box as an ARIA 1.2 combobox with a listbox popup.
// htmx fetches the options (hx-get on the input, debounced, one request at a time); this file opens
// and closes the list, moves the active option with the arrow keys, follows it on Enter, closes it on
// Escape, and says in the live region how many offerings were found. Without it the form still submits.
(() => {
  const input = document.getElementById("header-q");
  const list = document.getElementById("header-suggestions");
  const status = document.getElementById("header-suggestions-status");
  if (!input || !list || input.getAttribute("role") !== "combobox") return;

  let active = -1;
  const options = () => Array.from(list.querySelectorAll('[role="option"]'));

  function setActive(index) {
    const all = options();
    all.forEach((option, i) => {
      const selected = i === index;
      option.setAttribute("aria-selected", selected ? "true" : "false");
      option.classList.toggle("is-active", selected);
    });
    active = index;
    if (index >= 0 && all[index]) {
      input.setAttribute("aria-activedescendant", all[index].id);
      all[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function close() {
    setActive(-1);
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
  }

  function open() {
    if (!options().length) return close();
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
  }

  function follow(option) {
    if (option && option.dataset.href) window.location.assign(option.dataset.href);
  }

  function announce() {
    const searchLine = list.querySelector("[data-count]");
    if (!searchLine) { status.textContent = ""; return; }
    const count = Number(searchLine.dataset.count);
    status.textContent = count === 0
      ? "No offerings match. Press Enter to search."
      : `${count} ${count === 1 ? "offering" : "offerings"} suggested. Use the arrow keys to choose.`;
  }

  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target !== list) return;
    setActive(-1);
    if (document.activeElement === input && input.value.trim()) open(); else close();
    announce();
  });

  input.addEventListener("keydown", (event) => {
    const all = options();
    switch (event.key) {
      case "ArrowDown":
        if (!all.length) return;
        event.preventDefault();
        if (list.hidden) { open(); setActive(0); } else setActive((active + 1) % all.length);
        break;
      case "ArrowUp":
        if (!all.length) return;
        event.preventDefault();
        if (list.hidden) { open(); setActive(all.length - 1); } else setActive(active <= 0 ? all.length - 1 : active - 1);
        break;
      case "Enter":
        if (!list.hidden && active >= 0 && all[active]) {
          event.preventDefault();
          follow(all[active]);
        }
        break;
      case "Escape":
        if (!list.hidden) {
          event.preventDefault();
          event.stopPropagation();
          close();
        } else if (input.value) {
          event.preventDefault();
          input.value = "";
          list.replaceChildren();
          status.textContent = "";
        }
        break;
      default:
        break;
    }
  });

  input.addEventListener("input", () => {
    if (!input.value.trim()) { list.replaceChildren(); close(); }
  });
  input.addEventListener("focus", () => { if (input.value.trim()) open(); });
  input.addEventListener("blur", () => { window.setTimeout(close, 150); });

  // a pointer press must not blur the input before the click lands
  list.addEventListener("mousedown", (event) => event.preventDefault());
  list.addEventListener("click", (event) => follow(event.target.closest('[role="option"]')));
})();
