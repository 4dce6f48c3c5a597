// A virtualised list of fixed-height rows: only the rows in view (plus a few) are in
// the DOM, so 100k rows cost what 40 do. Keyboard: arrows, Page Up/Down, Home/End
// move the active row; Enter opens it. It is one listbox with aria-activedescendant,
// so focus stays on the list while the active row scrolls into view.
import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';

export function VirtualList({
  count,
  rowHeight,
  label,
  renderRow,
  onOpen,
  idPrefix,
  testId,
}: {
  count: number;
  rowHeight: number;
  label: string;
  renderRow: (i: number) => ComponentChildren;
  onOpen: (i: number) => void;
  idPrefix: string;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [top, setTop] = useState(0);
  const [height, setHeight] = useState(600);
  const [active, setActive] = useState(0);
  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    setHeight(el.clientHeight);
    const ro = new ResizeObserver(() => setHeight(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  useEffect(() => {
    if (active >= count && count > 0) setActive(count - 1);
  }, [count]);
  // Scroll events come faster than frames; render once per frame.
  const frame = useRef(0);
  const onScroll = () => {
    if (frame.current) return;
    frame.current = requestAnimationFrame(() => {
      frame.current = 0;
      if (box.current) setTop(box.current.scrollTop);
    });
  };
  useEffect(() => () => cancelAnimationFrame(frame.current), []);
  const overscan = 8;
  const first = Math.max(0, Math.floor(top / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((top + height) / rowHeight) + overscan);
  // Rows are keyed by slot, not by index: a row scrolled out hands its DOM nodes to
  // the one scrolled in, which only changes their text and position, instead of
  // removing and creating elements each frame (the slots cover every row in view).
  const slots = Math.ceil(height / rowHeight) + 2 * overscan + 2;
  const reveal = (i: number) => {
    const el = box.current;
    if (!el) return;
    const y = i * rowHeight;
    if (y < el.scrollTop) el.scrollTop = y;
    else if (y + rowHeight > el.scrollTop + el.clientHeight) el.scrollTop = y + rowHeight - el.clientHeight;
  };
  const onKey = (e: KeyboardEvent) => {
    if (count === 0) return;
    const page = Math.max(1, Math.floor(height / rowHeight) - 1);
    let next = active;
    switch (e.key) {
      case 'ArrowDown':
      case 'j':
        next = Math.min(count - 1, active + 1);
        break;
      case 'ArrowUp':
      case 'k':
        next = Math.max(0, active - 1);
        break;
      case 'PageDown':
        next = Math.min(count - 1, active + page);
        break;
      case 'PageUp':
        next = Math.max(0, active - page);
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = count - 1;
        break;
      case 'Enter':
        onOpen(active);
        e.preventDefault();
        return;
      default:
        return;
    }
    e.preventDefault();
    setActive(next);
    reveal(next);
  };
  const rows = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div
        key={i % slots}
        id={`${idPrefix}-${i}`}
        role="option"
        aria-selected={i === active}
        class={i === active ? 'vrow active' : 'vrow'}
        style={{ top: `${i * rowHeight}px`, height: `${rowHeight}px` }}
        onClick={() => {
          setActive(i);
          onOpen(i);
        }}
      >
        {renderRow(i)}
      </div>,
    );
  }
  return (
    <div
      ref={box}
      class="vlist"
      role="listbox"
      aria-label={label}
      tabIndex={0}
      aria-activedescendant={count > 0 && active >= first && active < last ? `${idPrefix}-${active}` : undefined}
      onScroll={onScroll}
      onKeyDown={onKey}
      data-testid={testId}
    >
      <div class="vspace" style={{ height: `${count * rowHeight}px` }}>
        {rows}
      </div>
    </div>
  );
}
